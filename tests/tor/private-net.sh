#!/usr/bin/env bash
# A private Tor network on loopback, for tests: 3 directory authorities
# (keys from tor-gencert), 5 relays, TestingTorNetwork 1 and the fast
# voting settings of Tor's chutney templates. Then runs a command with
# KOLO_TOR_EXTRA_TORRC pointing at the torrc lines a client of this
# network needs, and stops the network afterwards.
#
#   unshare -n tests/tor/private-net.sh WORKDIR COMMAND [ARGS...]
#
# It refuses to run unless it is inside a fresh network namespace (no
# interface but lo), so nothing it starts can reach the public Tor
# network: every tor here has only 127.0.0.1.
set -euo pipefail

work=$1
shift

if [ "$(ip -o link show | wc -l)" != "1" ] || ! ip -o link show lo >/dev/null 2>&1; then
    echo "private-net.sh: not in a fresh network namespace (run it under unshare -n)" >&2
    exit 2
fi
ip link set lo up

rm -rf "$work"
mkdir -p "$work"
chmod 700 "$work"
empty="$work/empty.torrc"
: > "$empty"

AUTHS=3
RELAYS=5
pids=()
# TERM, then KILL whatever is still running after 10 s (a tor has been
# seen to hang on exit after catching TERM).
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 20); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT

# Settings every node of this network shares (chutney's common.i).
common() {
    cat <<CONF
TestingTorNetwork 1
AssumeReachable 1
PathsNeededToBuildCircuits 0.25
TestingDirAuthVoteExit *
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
ClientUseIPv6 0
CONF
}

# 1. Authority keys and fingerprints.
dirauth_lines=""
for i in $(seq 0 $((AUTHS - 1))); do
    d="$work/auth$i"
    mkdir -p "$d/keys"
    chmod 700 "$d"
    orport=$((5000 + i))
    dirport=$((7000 + i))
    (cd "$d/keys" && echo "" | tor-gencert --create-identity-key -m 12 -a "127.0.0.1:$dirport" --passphrase-fd 0 >/dev/null 2>&1)
    tor --list-fingerprint --DataDirectory "$d" --ORPort "127.0.0.1:$orport" --Nickname "auth$i" \
        --defaults-torrc "$empty" -f "$empty" --Log "err stderr" >/dev/null
    v3ident=$(awk '/^fingerprint /{print $2}' "$d/keys/authority_certificate")
    fp=$(awk '{print $2}' "$d/fingerprint")
    dirauth_lines+="DirAuthority auth$i orport=$orport no-v2 v3ident=$v3ident 127.0.0.1:$dirport $fp"$'\n'
done

# 2. Authorities (also relays) and relays.
for i in $(seq 0 $((AUTHS - 1))); do
    d="$work/auth$i"
    { common; printf '%s' "$dirauth_lines"; cat <<CONF
DataDirectory $d
Nickname auth$i
ContactInfo auth$i@test.invalid
Address 127.0.0.1
ORPort 127.0.0.1:$((5000 + i))
DirPort 127.0.0.1:$((7000 + i))
SocksPort 0
ExitRelay 0
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval 20
TestingV3AuthInitialVoteDelay 4
TestingV3AuthInitialDistDelay 4
V3AuthVotingInterval 20
V3AuthVoteDelay 4
V3AuthDistDelay 4
Log notice file $d/notice.log
ShutdownWaitLength 0
CONF
    } > "$d/torrc"
done
for j in $(seq 0 $((RELAYS - 1))); do
    d="$work/relay$j"
    mkdir -p "$d"
    chmod 700 "$d"
    { common; printf '%s' "$dirauth_lines"; cat <<CONF
DataDirectory $d
Nickname relay$j
ContactInfo relay$j@test.invalid
Address 127.0.0.1
ORPort 127.0.0.1:$((5100 + j))
SocksPort 0
ExitRelay 0
Log notice file $d/notice.log
ShutdownWaitLength 0
CONF
    } > "$d/torrc"
done

for d in "$work"/auth* "$work"/relay*; do
    tor -f "$d/torrc" --defaults-torrc "$empty" --RunAsDaemon 0 >/dev/null 2>&1 &
    pids+=($!)
done

# 3. What a client of this network adds to its torrc.
{ common; printf '%s' "$dirauth_lines"; } > "$work/client.torrc"
echo "private tor network: $AUTHS authorities, $RELAYS relays in $work" >&2

export KOLO_TOR_EXTRA_TORRC="$work/client.torrc"
set +e
"$@"
status=$?
set -e
exit $status
