//! ChaCha20-Poly1305 with fixed-size key and nonce arguments.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};

use super::CryptoError;

pub fn seal(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    ChaCha20Poly1305::new(&(*key).into())
        .encrypt(&(*nonce).into(), Payload { msg: plaintext, aad: ad })
        .map_err(|_| CryptoError::DecryptFailed)
}

pub fn open(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    ChaCha20Poly1305::new(&(*key).into())
        .decrypt(&(*nonce).into(), Payload { msg: ciphertext, aad: ad })
        .map_err(|_| CryptoError::DecryptFailed)
}
