/*
 * vectorseal native page AEAD: AES-256-GCM over consecutive 16 KiB chunks,
 * nonce = base nonce XOR chunk counter (big-endian), empty AAD, each chunk
 * written as ciphertext || 16-byte tag. The contract is src/crypto/engine.ts;
 * src/crypto/node-engine.ts produces the same bytes with node:crypto.
 *
 * Built against Node's own OpenSSL (headers under <nodedir>/include/node,
 * symbols exported by the node binary), so there is no second OpenSSL in the
 * process. Why native at all: node:crypto pays a key schedule and fresh
 * buffers per page. Here one EVP_CIPHER_CTX per key is set up once; each
 * chunk only resets the IV, and all chunks of one call are processed in one
 * JS -> native crossing, straight from the caller's buffer into the caller's
 * buffer.
 */
#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE 16384
#define TAG_SIZE 16
#define NONCE_SIZE 12
#define KEY_SIZE 32
#define SEALED_CHUNK_SIZE (CHUNK_SIZE + TAG_SIZE)
/* C2SP: chunk counters stay below 2^38. */
#define MAX_CHUNKS ((uint64_t)1 << 38)

/* Per-environment (main thread or worker) state: the fetched cipher and digest, and one reusable context of each. */
typedef struct {
  EVP_CIPHER *aes;
  EVP_MD *sha256;
  /* Reused by the one-shot KMS calls (one JS thread per environment): no context is allocated per message. */
  EVP_MD_CTX *md_ctx;
  EVP_CIPHER_CTX *gcm_ctx;
} addon_state;

/* One key: a cipher context with the key schedule done once. */
typedef struct {
  EVP_CIPHER_CTX *ctx;
} page_cipher;

#define CALL(env, expr)                      \
  do {                                       \
    if ((expr) != napi_ok) return NULL;      \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

static napi_value throw_openssl(napi_env env, const char *what) {
  napi_throw_error(env, "ERR_VECTORSEAL_OPENSSL", what);
  return NULL;
}

/* Reads a Uint8Array (or Buffer) argument; returns 0 and throws otherwise. */
static int get_bytes(napi_env env, napi_value value, const char *name, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *ptr = NULL;
  /* One call checks and reads: napi_invalid_arg (nothing thrown) for a non-typed-array. */
  if (napi_get_typedarray_info(env, value, &type, len, &ptr, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    char msg[96];
    snprintf(msg, sizeof msg, "\"%s\" expected Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  /* A zero-length view may have no backing store; never hand NULL to OpenSSL. */
  static uint8_t empty[1];
  *data = ptr != NULL ? (uint8_t *)ptr : empty;
  return 1;
}

static int get_cipher(napi_env env, napi_value value, page_cipher **out) {
  void *ptr = NULL;
  if (napi_get_value_external(env, value, &ptr) != napi_ok || ptr == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a cipher handle");
    return 0;
  }
  page_cipher *pc = (page_cipher *)ptr;
  if (pc->ctx == NULL) {
    napi_throw_error(env, "ERR_VECTORSEAL_DISPOSED", "cipher was disposed");
    return 0;
  }
  *out = pc;
  return 1;
}

/*
 * The tag moves through a prebuilt OSSL_PARAM rather than EVP_CIPHER_CTX_ctrl,
 * which would build the same parameter array on every chunk.
 */
static inline int get_tag(EVP_CIPHER_CTX *ctx, uint8_t *tag) {
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, TAG_SIZE), OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(ctx, params);
}

static inline int set_tag(EVP_CIPHER_CTX *ctx, const uint8_t *tag) {
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, TAG_SIZE), OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_set_params(ctx, params);
}

/* Reads a chunk counter: an integer in [0, 2^38). */
static int get_counter(napi_env env, napi_value value, uint64_t *out) {
  double d = -1;
  if (napi_get_value_double(env, value, &d) != napi_ok || !(d >= 0) || d >= (double)MAX_CHUNKS || d != (double)(uint64_t)d) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "\"counter\" expected an integer in [0, 2^38)");
    return 0;
  }
  *out = (uint64_t)d;
  return 1;
}

static inline void make_nonce(const uint8_t *base, uint64_t counter, uint8_t nonce[NONCE_SIZE]) {
  memcpy(nonce, base, NONCE_SIZE);
  for (int i = NONCE_SIZE - 1; i >= NONCE_SIZE - 8 && counter != 0; i--) {
    nonce[i] ^= (uint8_t)(counter & 0xff);
    counter >>= 8;
  }
}

static void free_page_cipher(page_cipher *pc) {
  if (pc->ctx != NULL) {
    /* Frees the provider context, which cleanses the key schedule. */
    EVP_CIPHER_CTX_free(pc->ctx);
    pc->ctx = NULL;
  }
}

static void finalize_page_cipher(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  page_cipher *pc = (page_cipher *)data;
  free_page_cipher(pc);
  free(pc);
}

/* cipher(key: Uint8Array(32)) -> handle */
static napi_value js_cipher(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "\"key\" expected Uint8Array");
  uint8_t *key;
  size_t key_len;
  if (!get_bytes(env, argv[0], "key", &key, &key_len)) return NULL;
  if (key_len != KEY_SIZE) return throw_range(env, "\"key\" expected Uint8Array of length 32");
  addon_state *state = NULL;
  CALL(env, napi_get_instance_data(env, (void **)&state));

  page_cipher *pc = (page_cipher *)calloc(1, sizeof *pc);
  if (pc == NULL) return throw_openssl(env, "out of memory");
  pc->ctx = EVP_CIPHER_CTX_new();
  /* The key goes straight from the caller's buffer into the key schedule; no copy is kept here. */
  if (pc->ctx == NULL || !EVP_CipherInit_ex(pc->ctx, state->aes, NULL, key, NULL, 1)) {
    free_page_cipher(pc);
    free(pc);
    return throw_openssl(env, "AES-256-GCM key setup failed");
  }
  napi_value handle;
  if (napi_create_external(env, pc, finalize_page_cipher, NULL, &handle) != napi_ok) {
    free_page_cipher(pc);
    free(pc);
    return NULL;
  }
  return handle;
}

/* dispose(handle): frees the context now; idempotent. */
static napi_value js_dispose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *ptr = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL) {
    return throw_type(env, "expected a cipher handle");
  }
  free_page_cipher((page_cipher *)ptr);
  return NULL;
}

typedef struct {
  page_cipher *pc;
  uint8_t *base_nonce;
  uint64_t counter;
  uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len;
} chunk_call;

/* Shared argument parsing of seal and open: (handle, baseNonce, counter, input, out). */
static int parse_chunk_call(napi_env env, napi_callback_info info, chunk_call *c) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 5) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (handle, baseNonce, counter, input, out)");
    return 0;
  }
  size_t nonce_len;
  if (!get_cipher(env, argv[0], &c->pc)) return 0;
  if (!get_bytes(env, argv[1], "baseNonce", &c->base_nonce, &nonce_len)) return 0;
  if (nonce_len != NONCE_SIZE) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "\"baseNonce\" expected Uint8Array of length 12");
    return 0;
  }
  if (!get_counter(env, argv[2], &c->counter)) return 0;
  if (!get_bytes(env, argv[3], "input", &c->in, &c->in_len)) return 0;
  if (!get_bytes(env, argv[4], "out", &c->out, &c->out_len)) return 0;
  return 1;
}

/* seal(handle, baseNonce, counter, plaintext, out) -> bytes written */
static napi_value js_seal(napi_env env, napi_callback_info info) {
  chunk_call c;
  if (!parse_chunk_call(env, info, &c)) return NULL;
  uint64_t chunks = c.in_len == 0 ? 1 : (c.in_len + CHUNK_SIZE - 1) / CHUNK_SIZE;
  if (c.counter + chunks > MAX_CHUNKS) return throw_range(env, "message exceeds 2^38 chunks");
  if (c.out_len < c.in_len + chunks * TAG_SIZE) return throw_range(env, "\"out\" is too small for the sealed chunks");

  EVP_CIPHER_CTX *ctx = c.pc->ctx;
  uint8_t nonce[NONCE_SIZE];
  size_t in_off = 0, out_off = 0;
  uint64_t index = c.counter;
  do {
    size_t n = c.in_len - in_off < CHUNK_SIZE ? c.in_len - in_off : CHUNK_SIZE;
    int len = 0;
    make_nonce(c.base_nonce, index, nonce);
    uint8_t *dst = c.out + out_off;
    if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) ||
        (n > 0 && !EVP_CipherUpdate(ctx, dst, &len, c.in + in_off, (int)n)) ||
        !EVP_CipherFinal_ex(ctx, dst + n, &len) ||
        !get_tag(ctx, dst + n)) {
      OPENSSL_cleanse(nonce, sizeof nonce);
      return throw_openssl(env, "AES-256-GCM seal failed");
    }
    in_off += n;
    out_off += n + TAG_SIZE;
    index++;
  } while (in_off < c.in_len);
  OPENSSL_cleanse(nonce, sizeof nonce);

  napi_value result;
  CALL(env, napi_create_double(env, (double)out_off, &result));
  return result;
}

/*
 * open(handle, baseNonce, counter, ciphertext, out) -> plaintext bytes written,
 * or -(i + 1) when chunk i of this call (counter + i absolute) fails to
 * authenticate; that chunk's output is zeroed.
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  chunk_call c;
  if (!parse_chunk_call(env, info, &c)) return NULL;
  size_t full = c.in_len / SEALED_CHUNK_SIZE;
  size_t rest = c.in_len % SEALED_CHUNK_SIZE;
  uint64_t chunks = full + (rest > 0 || full == 0 ? 1 : 0);
  if (c.counter + chunks > MAX_CHUNKS) return throw_range(env, "message exceeds 2^38 chunks");
  size_t need = full * CHUNK_SIZE + (rest >= TAG_SIZE ? rest - TAG_SIZE : 0);
  if (c.out_len < need) return throw_range(env, "\"out\" is too small for the opened chunks");

  EVP_CIPHER_CTX *ctx = c.pc->ctx;
  uint8_t nonce[NONCE_SIZE];
  size_t in_off = 0, out_off = 0;
  uint64_t index = c.counter;
  double failed = 0;
  do {
    size_t n = c.in_len - in_off < SEALED_CHUNK_SIZE ? c.in_len - in_off : SEALED_CHUNK_SIZE;
    if (n < TAG_SIZE) {
      failed = -(double)(index - c.counter) - 1;
      break;
    }
    size_t body = n - TAG_SIZE;
    int len = 0;
    uint8_t *dst = c.out + out_off;
    make_nonce(c.base_nonce, index, nonce);
    if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) ||
        !set_tag(ctx, c.in + in_off + body) ||
        (body > 0 && !EVP_CipherUpdate(ctx, dst, &len, c.in + in_off, (int)body))) {
      OPENSSL_cleanse(nonce, sizeof nonce);
      return throw_openssl(env, "AES-256-GCM open failed");
    }
    /* OpenSSL's own constant-time tag check. */
    if (EVP_CipherFinal_ex(ctx, dst + body, &len) <= 0) {
      OPENSSL_cleanse(dst, body);
      failed = -(double)(index - c.counter) - 1;
      break;
    }
    in_off += n;
    out_off += body;
    index++;
  } while (in_off < c.in_len);
  OPENSSL_cleanse(nonce, sizeof nonce);

  napi_value result;
  CALL(env, napi_create_double(env, failed < 0 ? failed : (double)out_off, &result));
  return result;
}

/*
 * gcm(encrypt, key, iv, aad, input) -> Buffer | null: one-shot AES-GCM with
 * any key size, IV length and AAD, for conformance tests of the primitive.
 * Encrypt returns ciphertext || tag; decrypt takes ciphertext || tag and
 * returns the plaintext, or null when the tag does not verify. Not a hot path.
 */
static napi_value js_gcm(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "expected (encrypt, key, iv, aad, input)");
  bool encrypt = false;
  CALL(env, napi_get_value_bool(env, argv[0], &encrypt));
  uint8_t *key, *iv, *aad, *in;
  size_t key_len, iv_len, aad_len, in_len;
  if (!get_bytes(env, argv[1], "key", &key, &key_len) || !get_bytes(env, argv[2], "iv", &iv, &iv_len) ||
      !get_bytes(env, argv[3], "aad", &aad, &aad_len) || !get_bytes(env, argv[4], "input", &in, &in_len)) {
    return NULL;
  }
  const char *name = key_len == 16 ? "AES-128-GCM" : key_len == 24 ? "AES-192-GCM" : key_len == 32 ? "AES-256-GCM" : NULL;
  if (name == NULL) return throw_range(env, "\"key\" expected 16, 24 or 32 bytes");
  if (iv_len == 0) return throw_range(env, "\"iv\" expected at least 1 byte");
  if (!encrypt && in_len < TAG_SIZE) return throw_range(env, "\"input\" expected at least 16 bytes");
  if (in_len > INT32_MAX - TAG_SIZE || aad_len > INT32_MAX) return throw_range(env, "input too large");

  size_t body = encrypt ? in_len : in_len - TAG_SIZE;
  size_t out_len = encrypt ? in_len + TAG_SIZE : body;
  napi_value result;
  void *out_ptr = NULL;
  CALL(env, napi_create_buffer(env, out_len, &out_ptr, &result));
  uint8_t *out = (uint8_t *)out_ptr;

  EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = cipher != NULL && ctx != NULL && EVP_CipherInit_ex(ctx, cipher, NULL, NULL, NULL, encrypt ? 1 : 0) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len, NULL) &&
           EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, -1);
  int len = 0;
  if (ok && aad_len > 0) ok = EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len);
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, in + body);
  if (ok && body > 0) ok = EVP_CipherUpdate(ctx, out, &len, in, (int)body);
  int auth = 1;
  if (ok) {
    if (EVP_CipherFinal_ex(ctx, out + body, &len) <= 0) {
      if (encrypt) ok = 0;
      else auth = 0;
    }
  }
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + body);
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(cipher);
  if (!ok) {
    OPENSSL_cleanse(out, out_len);
    return throw_openssl(env, "AES-GCM failed");
  }
  if (!auth) {
    OPENSSL_cleanse(out, out_len);
    napi_value null_value;
    CALL(env, napi_get_null(env, &null_value));
    return null_value;
  }
  return result;
}

#define SHA256_SIZE 32
#define SHA256_BLOCK 64

/*
 * HMAC-SHA256 (RFC 2104) on the environment's fetched SHA-256 and reused
 * digest context: H(K ^ opad || H(K ^ ipad || m)), m given as up to three
 * pieces. Node's createHmac builds a JS object, a native handle and a fresh
 * OpenSSL context per call; the key service computes three HMACs per request
 * (two for the message key's HKDF, one for the SigV4 signature), and that
 * setup cost more than the hashing.
 */
typedef struct {
  const uint8_t *data;
  size_t len;
} piece;

static int hmac_sha256(addon_state *state, const uint8_t *key, size_t key_len, const piece *m, int pieces, uint8_t out[SHA256_SIZE]) {
  EVP_MD_CTX *ctx = state->md_ctx;
  uint8_t block[SHA256_BLOCK];
  uint8_t inner[SHA256_SIZE];
  unsigned int n = 0;
  int ok = 1;
  memset(block, 0, sizeof block);
  if (key_len > SHA256_BLOCK) {
    ok = EVP_DigestInit_ex(ctx, state->sha256, NULL) && EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestFinal_ex(ctx, block, &n);
  } else if (key_len > 0) {
    memcpy(block, key, key_len);
  }
  for (int i = 0; i < SHA256_BLOCK; i++) block[i] ^= 0x36;
  ok = ok && EVP_DigestInit_ex(ctx, state->sha256, NULL) && EVP_DigestUpdate(ctx, block, SHA256_BLOCK);
  for (int i = 0; ok && i < pieces; i++) {
    if (m[i].len > 0) ok = EVP_DigestUpdate(ctx, m[i].data, m[i].len);
  }
  ok = ok && EVP_DigestFinal_ex(ctx, inner, &n);
  for (int i = 0; i < SHA256_BLOCK; i++) block[i] ^= 0x36 ^ 0x5c;
  ok = ok && EVP_DigestInit_ex(ctx, state->sha256, NULL) && EVP_DigestUpdate(ctx, block, SHA256_BLOCK) &&
       EVP_DigestUpdate(ctx, inner, SHA256_SIZE) && EVP_DigestFinal_ex(ctx, out, &n);
  /* A fresh Init overwrites the chaining state, which after Final holds the HMAC itself. */
  ok = EVP_DigestInit_ex(ctx, state->sha256, NULL) && ok;
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(inner, sizeof inner);
  return ok;
}

/* hmacSha256(key, data) -> Buffer(32) */
static napi_value js_hmac_sha256(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "expected (key, data)");
  uint8_t *key, *data;
  size_t key_len, data_len;
  if (!get_bytes(env, argv[0], "key", &key, &key_len) || !get_bytes(env, argv[1], "data", &data, &data_len)) return NULL;
  addon_state *state = NULL;
  CALL(env, napi_get_instance_data(env, (void **)&state));
  napi_value result;
  void *out = NULL;
  CALL(env, napi_create_buffer(env, SHA256_SIZE, &out, &result));
  piece m = {data, data_len};
  if (!hmac_sha256(state, key, key_len, &m, 1, (uint8_t *)out)) return throw_openssl(env, "HMAC-SHA256 failed");
  return result;
}

/*
 * hkdfGcm(encrypt, ikm, salt, infoPrefix, infoSuffix, aad, input, out) -> bytes
 * written, or -1 when opening fails to authenticate (out is then zeroed).
 *
 * The key service's per-message AEAD in one crossing: the message key is
 * HKDF-SHA256 (RFC 5869) of ikm with salt, info = infoPrefix || infoSuffix,
 * 32 bytes (Extract, then the single Expand block), and seals or opens input
 * with AES-256-GCM under it, IV all zeros (the key seals one message only),
 * the given AAD. Sealing writes ciphertext || 16-byte tag; opening takes
 * ciphertext || tag and writes the plaintext. src/kms/ciphertext.ts computes
 * the same with node:crypto when the addon is not built. The message key
 * never leaves this function and is cleansed before it returns.
 */
static napi_value js_hkdf_gcm(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) return throw_type(env, "expected (encrypt, ikm, salt, infoPrefix, infoSuffix, aad, input, out)");
  bool encrypt = false;
  CALL(env, napi_get_value_bool(env, argv[0], &encrypt));
  uint8_t *ikm, *salt, *info1, *info2, *aad, *in, *out;
  size_t ikm_len, salt_len, info1_len, info2_len, aad_len, in_len, out_len;
  if (!get_bytes(env, argv[1], "ikm", &ikm, &ikm_len) || !get_bytes(env, argv[2], "salt", &salt, &salt_len) ||
      !get_bytes(env, argv[3], "infoPrefix", &info1, &info1_len) || !get_bytes(env, argv[4], "infoSuffix", &info2, &info2_len) ||
      !get_bytes(env, argv[5], "aad", &aad, &aad_len) || !get_bytes(env, argv[6], "input", &in, &in_len) ||
      !get_bytes(env, argv[7], "out", &out, &out_len)) {
    return NULL;
  }
  if (!encrypt && in_len < TAG_SIZE) return throw_range(env, "\"input\" expected at least 16 bytes");
  if (in_len > INT32_MAX - TAG_SIZE || aad_len > INT32_MAX) return throw_range(env, "input too large");
  size_t body = encrypt ? in_len : in_len - TAG_SIZE;
  size_t need = encrypt ? in_len + TAG_SIZE : body;
  if (out_len < need) return throw_range(env, "\"out\" is too small");
  addon_state *state = NULL;
  CALL(env, napi_get_instance_data(env, (void **)&state));

  static const uint8_t one = 1;
  static const uint8_t zero_iv[NONCE_SIZE] = {0};
  uint8_t prk[SHA256_SIZE];
  uint8_t key[SHA256_SIZE];
  /* Extract: PRK = HMAC(salt, ikm). Expand's single block: HMAC(PRK, info || 0x01). */
  piece extract = {ikm, ikm_len};
  piece expand[3] = {{info1, info1_len}, {info2, info2_len}, {&one, 1}};
  int ok = hmac_sha256(state, salt, salt_len, &extract, 1, prk) && hmac_sha256(state, prk, SHA256_SIZE, expand, 3, key);
  OPENSSL_cleanse(prk, sizeof prk);

  EVP_CIPHER_CTX *ctx = state->gcm_ctx;
  int len = 0;
  ok = ok && EVP_CipherInit_ex(ctx, state->aes, NULL, key, zero_iv, encrypt ? 1 : 0);
  OPENSSL_cleanse(key, sizeof key);
  if (ok && aad_len > 0) ok = EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len);
  if (ok && !encrypt) ok = set_tag(ctx, in + body);
  if (ok && body > 0) ok = EVP_CipherUpdate(ctx, out, &len, in, (int)body);
  int auth = 1;
  if (ok && EVP_CipherFinal_ex(ctx, out + body, &len) <= 0) {
    if (encrypt) ok = 0;
    else auth = 0;
  }
  if (ok && encrypt) ok = get_tag(ctx, out + body);
  /* Drops the message key's schedule from the reused context. */
  EVP_CIPHER_CTX_reset(ctx);
  if (!ok || !auth) OPENSSL_cleanse(out, need);
  if (!ok) return throw_openssl(env, "HKDF-SHA256 + AES-256-GCM failed");
  napi_value result;
  CALL(env, napi_create_double(env, auth ? (double)need : -1, &result));
  return result;
}

static void finalize_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  addon_state *state = (addon_state *)data;
  EVP_CIPHER_CTX_free(state->gcm_ctx);
  EVP_MD_CTX_free(state->md_ctx);
  EVP_MD_free(state->sha256);
  EVP_CIPHER_free(state->aes);
  free(state);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  addon_state *state = (addon_state *)calloc(1, sizeof *state);
  if (state == NULL) return throw_openssl(env, "out of memory");
  /* Fetched once per environment so that making a cipher does no provider lookup. */
  state->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  state->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  state->md_ctx = EVP_MD_CTX_new();
  state->gcm_ctx = EVP_CIPHER_CTX_new();
  if (state->aes == NULL || state->sha256 == NULL || state->md_ctx == NULL || state->gcm_ctx == NULL) {
    finalize_state(env, state, NULL);
    return throw_openssl(env, "AES-256-GCM or SHA-256 is not available from Node's OpenSSL");
  }
  if (napi_set_instance_data(env, state, finalize_state, NULL) != napi_ok) {
    finalize_state(env, state, NULL);
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"cipher", NULL, js_cipher, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, js_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dispose", NULL, js_dispose, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gcm", NULL, js_gcm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hmacSha256", NULL, js_hmac_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hkdfGcm", NULL, js_hkdf_gcm, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
