#include "bundle/signing.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

#include <cstring>

#include "bundle/signature.h"
#include "core/file.h"

namespace famq {
namespace {

// CTR-DRBG seeded from the platform entropy; used for key generation and
// for the blinding inside deterministic ECDSA (which does not change output).
class Drbg {
 public:
  Drbg() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    static const char kPers[] = "famq-bundle-signing";
    ok_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                reinterpret_cast<const unsigned char*>(kPers), sizeof(kPers) - 1) == 0;
  }
  ~Drbg() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;
  bool ok() const { return ok_; }
  mbedtls_ctr_drbg_context* ctx() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  bool ok_ = false;
};

Result<std::string> PublicPem(mbedtls_pk_context* pk) {
  unsigned char buf[1024];
  if (mbedtls_pk_write_pubkey_pem(pk, buf, sizeof(buf)) != 0) return Internal("cannot write the public key");
  return std::string(reinterpret_cast<const char*>(buf));
}

Result<std::string> KeyIdOf(const std::string& public_pem) {
  auto pub = PublicKey::Parse(public_pem, "public key");
  if (!pub.ok()) return pub.status();
  return pub->key_id();
}

}  // namespace

struct PrivateKey::Impl {
  mbedtls_pk_context pk;
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

Result<KeyPairPem> GenerateKeyPair() {
  Drbg drbg;
  if (!drbg.ok()) return Internal("keygen: cannot seed the random generator from the system's entropy");
  PrivateKey::Impl key;
  if (mbedtls_pk_setup(&key.pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
      mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key.pk), mbedtls_ctr_drbg_random, drbg.ctx()) !=
          0) {
    return Internal("keygen: P-256 key generation failed");
  }
  KeyPairPem out;
  unsigned char buf[1024];
  if (mbedtls_pk_write_key_pem(&key.pk, buf, sizeof(buf)) != 0) return Internal("keygen: cannot write the key");
  out.private_pem = reinterpret_cast<const char*>(buf);
  std::memset(buf, 0, sizeof(buf));
  auto pub = PublicPem(&key.pk);
  if (!pub.ok()) return pub.status();
  out.public_pem = *pub;
  auto id = KeyIdOf(out.public_pem);
  if (!id.ok()) return id.status();
  out.key_id = *id;
  return out;
}

Status WriteKeyPair(const KeyPairPem& keys, const std::string& private_path, const std::string& public_path) {
  if (private_path == public_path) return InvalidArgument("keygen: --out and --pub name the same file");
  // The private key: created 0600 from the start, never world-readable.
  FAMQ_RETURN_IF_ERROR(WriteFileAtomic(private_path, keys.private_pem.data(), keys.private_pem.size(), 0600));
  return WriteFileAtomic(public_path, keys.public_pem.data(), keys.public_pem.size());
}

PrivateKey::PrivateKey() = default;
PrivateKey::~PrivateKey() = default;
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;

Result<PrivateKey> PrivateKey::Load(const std::string& path) {
  auto text = ReadFile(path, 65536);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

Result<PrivateKey> PrivateKey::Parse(const std::string& pem, const std::string& origin) {
  PrivateKey k;
  k.impl_ = std::make_unique<Impl>();
  std::vector<unsigned char> buf(pem.begin(), pem.end());
  buf.push_back('\0');
  if (mbedtls_pk_parse_key(&k.impl_->pk, buf.data(), buf.size(), nullptr, 0) != 0) {
    std::fill(buf.begin(), buf.end(), 0);
    if (pem.find("BEGIN PUBLIC KEY") != std::string::npos) {
      return InvalidFormat(origin + ": this is a public key; signing needs the private key (famq keygen --out)");
    }
    return InvalidFormat(origin + ": not an unencrypted PEM private key");
  }
  std::fill(buf.begin(), buf.end(), 0);
  if (!mbedtls_pk_can_do(&k.impl_->pk, MBEDTLS_PK_ECDSA) ||
      mbedtls_pk_ec(k.impl_->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
    return Unsupported(origin + ": not an EC P-256 key (bundles are signed with ECDSA P-256)");
  }
  auto pub = PublicPem(&k.impl_->pk);
  if (!pub.ok()) return pub.status();
  k.public_pem_ = *pub;
  auto id = KeyIdOf(k.public_pem_);
  if (!id.ok()) return id.status();
  k.key_id_ = *id;
  return k;
}

Result<std::vector<uint8_t>> PrivateKey::Sign(const Sha256Digest& digest) const {
  if (!impl_) return InvalidArgument("no private key");
  Drbg drbg;
  if (!drbg.ok()) return Internal("sign: cannot seed the random generator");
  unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t len = 0;
  if (mbedtls_pk_sign(&impl_->pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig, &len,
                      mbedtls_ctr_drbg_random, drbg.ctx()) != 0) {
    return Internal("sign: ECDSA signing failed");
  }
  return std::vector<uint8_t>(sig, sig + len);
}

}  // namespace famq
