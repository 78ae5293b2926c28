#include "gw/security.h"

#include <dirent.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include "gw/config.h"
#include "gw/fs.h"
#include "mhhs/json.h"

namespace gw {
namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct PkeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };
struct CipherCtxFree { void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); } };
struct StoreFree { void operator()(X509_STORE* s) const { X509_STORE_free(s); } };
struct StoreCtxFree { void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); } };
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr ParsePemCert(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string CertDer(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string ToHex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// The subject's CN and OU values: where a participant certificate names its MPID.
std::vector<std::string> Identities(X509* cert) {
  std::vector<std::string> out;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int nid : {NID_commonName, NID_organizationalUnitName}) {
    for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0; i = X509_NAME_get_index_by_NID(name, nid, i)) {
      ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      unsigned char* utf8 = nullptr;
      int n = ASN1_STRING_to_UTF8(&utf8, s);
      if (n >= 0) {
        out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
        OPENSSL_free(utf8);
      }
    }
  }
  return out;
}

std::string JoinIdentities(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& s : ids) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "(none)" : out;
}

// "RS256" / "ES256" for an acceptable key; otherwise "" and `*why`.
std::string AlgorithmFor(EVP_PKEY* key, std::string* why) {
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits < 2048) {
      *why = "RSA key of " + std::to_string(bits) + " bits (at least 2048 required)";
      return "";
    }
    return "RS256";
  }
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1 ||
        std::string(group) != "prime256v1") {
      *why = std::string("EC key on curve ") + (group[0] ? group : "(unknown)") + " (only P-256 is accepted)";
      return "";
    }
    return "ES256";
  }
  *why = "unsupported key type (RSA or EC P-256 expected)";
  return "";
}

int64_t AsnTimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

bool HasDigitalSignatureUsage(X509* cert) {
  if (!(X509_get_extension_flags(cert) & EXFLAG_KUSAGE)) return true;  // no keyUsage: unrestricted
  return (X509_get_key_usage(cert) & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return InvalidArgument("base64: length " + std::to_string(text.size()) + " is not a multiple of 4");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  for (size_t i = 0; i < text.size() - pad; ++i) {
    char c = text[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) {
      return InvalidArgument("base64: invalid character at offset " + std::to_string(i));
    }
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return InvalidArgument("base64: cannot decode");
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

namespace {
// Fetched once: OpenSSL 3 looks an algorithm up (under locks) each time EVP_sha256() or
// EVP_aes_256_gcm() is used implicitly, which costs more than hashing a small payload.
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return c;
}
}  // namespace

std::string Sha256(std::string_view bytes) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, Sha256Md(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::string Sha256Hex(std::string_view bytes) { return ToHex(Sha256(bytes)); }

std::string IsoUtc(int64_t unix_s) {
  time_t t = static_cast<time_t>(unix_s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool ParseIsoUtc(const std::string& text, int64_t* unix_s) {
  struct tm tm {};
  char z = 0;
  if (text.size() != 20 || std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                       &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7 || z != 'Z') {
    return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *unix_s = static_cast<int64_t>(timegm(&tm));
  return true;
}

std::string EventStringToSign(const Event& e, const std::string& date, const std::string& content_hash) {
  std::string out;
  out.reserve(256);
  JsonWriter w(&out);
  w.BeginArray();
  w.String("mhhs-event/1");
  w.String(e.id);
  w.String(e.type);
  w.String(e.event_code);
  w.String(e.sender.mpid);
  w.String(e.sender.role);
  w.String(e.sender.dip_id);
  w.BeginArray();
  for (const Party& r : e.recipients) {
    w.BeginArray();
    w.String(r.mpid);
    w.String(r.role);
    w.String(r.dip_id);
    w.EndArray();
  }
  w.EndArray();
  w.String(e.created_at);
  w.String(e.correlation_id);
  w.String(date);
  w.String(content_hash);
  w.EndArray();
  return out;
}

namespace {

std::string NodeHash(const std::string& left, const std::string& right) {
  std::string in;
  in.reserve(65);
  in.push_back('\x01');
  in.append(left);
  in.append(right);
  return Sha256(in);
}

}  // namespace

std::string MerkleLeafHash(std::string_view data) {
  std::string in;
  in.reserve(data.size() + 1);
  in.push_back('\x00');
  in.append(data);
  return Sha256(in);
}

namespace {

// Bottom up: at each level, nodes are paired left to right and a last node without a partner
// moves up unchanged. That is the same tree as RFC 9162's split at the largest power of two.
std::vector<std::string> MerkleLevelUp(const std::vector<std::string>& level) {
  std::vector<std::string> up;
  up.reserve((level.size() + 1) / 2);
  for (size_t i = 0; i + 1 < level.size(); i += 2) up.push_back(NodeHash(level[i], level[i + 1]));
  if (level.size() % 2) up.push_back(level.back());
  return up;
}

}  // namespace

std::string MerkleRoot(const std::vector<std::string>& leaves) {
  std::string root;
  MerklePaths(leaves, &root);
  return root;
}

std::vector<std::vector<std::string>> MerklePaths(const std::vector<std::string>& leaves, std::string* root) {
  std::vector<std::vector<std::string>> paths(leaves.size());
  std::vector<size_t> pos(leaves.size());  // each leaf's node at the current level
  for (size_t i = 0; i < leaves.size(); ++i) pos[i] = i;
  std::vector<std::string> level = leaves;
  while (level.size() > 1) {
    for (size_t i = 0; i < leaves.size(); ++i) {
      size_t sibling = pos[i] ^ 1;
      if (sibling < level.size()) paths[i].push_back(level[sibling]);
      pos[i] >>= 1;
    }
    level = MerkleLevelUp(level);
  }
  if (root) *root = level.empty() ? Sha256("") : level[0];
  return paths;
}

// RFC 9162, section 2.1.3.2.
bool MerkleRootFromPath(const std::string& leaf, uint64_t index, uint64_t size, const std::vector<std::string>& path,
                        std::string* root) {
  if (index >= size || leaf.size() != 32) return false;
  uint64_t fn = index, sn = size - 1;
  std::string r = leaf;
  for (const std::string& p : path) {
    if (sn == 0 || p.size() != 32) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return false;
  *root = r;
  return true;
}

std::string TreeStringToSign(const std::string& date, uint64_t size, const std::string& root) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  w.String("mhhs-tree/1");
  w.String(date);
  w.Int(static_cast<int64_t>(size));
  w.String(Base64Encode(root));
  w.EndArray();
  return out;
}

// ---------------------------------------------------------------------------------------------
// EventSigner

struct EventSigner::Key {
  PkeyPtr pkey;
  std::mutex mu;
  std::vector<EVP_PKEY_CTX*> idle;  // prepared signing contexts, one per concurrent signer
  ~Key() {
    for (EVP_PKEY_CTX* c : idle) EVP_PKEY_CTX_free(c);
  }
};

EventSigner::~EventSigner() = default;

StatusOr<std::unique_ptr<EventSigner>> EventSigner::Load(const SecurityConfig& config, const std::string& participant_mpid) {
  const std::string key_path = config.key_file;
  const std::string cert_path = config.certificate_file;
  if (cert_path.empty()) return InvalidArgument("[security] certificate: is required with key (" + key_path + ")");
  GW_RETURN_IF_ERROR(CheckSecretFile(key_path));
  auto key_pem = ReadFile(key_path);
  if (!key_pem.ok()) return key_pem.status();
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  // An encrypted key is refused, never prompted for: a daemon has no terminal.
  auto no_passphrase = [](char*, int, int, void*) -> int { return -1; };
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  // The key's text is not needed any more; do not keep it in memory longer than necessary.
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!pkey) return InvalidArgument(key_path + ": not a PEM private key (or it is encrypted): " + OpenSslError());
  std::string why;
  std::string alg = AlgorithmFor(pkey.get(), &why);
  if (alg.empty()) return InvalidArgument(key_path + ": " + why);

  auto cert_pem = ReadFile(cert_path);
  if (!cert_pem.ok()) return cert_pem.status();
  X509Ptr cert = ParsePemCert(*cert_pem);
  if (!cert) return InvalidArgument(cert_path + ": not a PEM certificate: " + OpenSslError());
  if (X509_check_private_key(cert.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(cert_path + ": the certificate does not belong to the key " + key_path);
  }
  std::vector<std::string> ids = Identities(cert.get());
  if (!participant_mpid.empty() && std::find(ids.begin(), ids.end(), participant_mpid) == ids.end()) {
    return InvalidArgument(cert_path + ": the certificate's subject names " + JoinIdentities(ids) +
                           ", not this gateway's participant_mpid " + participant_mpid);
  }
  if (!HasDigitalSignatureUsage(cert.get())) {
    return InvalidArgument(cert_path + ": the certificate's keyUsage does not allow digitalSignature");
  }
  std::unique_ptr<EventSigner> s(new EventSigner());
  s->key_ = std::make_unique<Key>();
  s->key_->pkey = std::move(pkey);
  s->alg_ = alg;
  // Carried as base64 of the PEM, as the DIP's X-DIP-Signature-Certificate is.
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), cert.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  s->cert_b64_ = Base64Encode(std::string_view(data, static_cast<size_t>(n)));
  s->cert_sha256_ = Sha256Hex(CertDer(cert.get()));
  s->embed_ = config.embed_certificate;
  s->sign_batches_ = config.sign_batches;
  s->cert_member_ = s->embed_ ? ",\"certificate\":\"" + s->cert_b64_ + "\"" : ",\"certSha256\":\"" + s->cert_sha256_ + "\"";
  s->not_after_ = AsnTimeToUnix(X509_get0_notAfter(cert.get()));
  return s;
}

Status EventSigner::Sign(Event* e, const std::string& date) const {
  const std::string hash = Base64Encode(Sha256(e->payload));
  auto sig = SignBytes(EventStringToSign(*e, date, hash));
  if (!sig.ok()) return sig.status();
  std::string out;
  out.reserve(cert_member_.size() + 512);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("alg"); w.String(alg_);
  w.Key("date"); w.String(date);
  w.Key("contentHash"); w.String(hash);
  w.Key("value"); w.String(Base64Encode(*sig));
  w.EndObject();
  // The certificate member is the same for every event: written once at load, copied here.
  out.insert(out.size() - 1, cert_member_);
  e->signature = std::move(out);
  return Status::Ok();
}

Status EventSigner::SignBatch(const std::vector<Event*>& events, const std::string& date) const {
  if (events.empty()) return Status::Ok();
  std::vector<std::string> hashes(events.size()), leaves(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    hashes[i] = Base64Encode(Sha256(events[i]->payload));
    leaves[i] = MerkleLeafHash(EventStringToSign(*events[i], date, hashes[i]));
  }
  // The tree's levels, each node's base64 worked out once: an event's path is a node of each
  // level but the root, and most nodes are on the paths of many events.
  std::vector<std::vector<std::string>> levels{std::move(leaves)};
  while (levels.back().size() > 1) levels.push_back(MerkleLevelUp(levels.back()));
  const std::string& root = levels.back()[0];
  std::vector<std::vector<std::string>> b64(levels.size() - 1);
  for (size_t l = 0; l + 1 < levels.size(); ++l) {
    b64[l].reserve(levels[l].size());
    for (const std::string& node : levels[l]) b64[l].push_back(Base64Encode(node));
  }
  auto sig = SignBytes(TreeStringToSign(date, events.size(), root));
  if (!sig.ok()) return sig.status();
  // What every signature of the batch shares, around its own hash, index and path. The same
  // bytes JsonWriter writes: base64 and digits need no escaping.
  std::string head = "{\"alg\":";
  AppendJsonString(&head, alg_);
  head.append(",\"date\":");
  AppendJsonString(&head, date);
  head.append(",\"contentHash\":\"");
  const std::string mid =
      "\",\"value\":\"" + Base64Encode(*sig) + "\",\"tree\":{\"size\":" + std::to_string(events.size()) + ",\"index\":";
  for (size_t i = 0; i < events.size(); ++i) {
    std::string out;
    out.reserve(head.size() + hashes[i].size() + mid.size() + 32 + levels.size() * 47 + cert_member_.size());
    out.append(head).append(hashes[i]).append(mid).append(std::to_string(i)).append(",\"path\":[");
    bool first = true;
    for (size_t l = 0; l + 1 < levels.size(); ++l) {
      const size_t sibling = (i >> l) ^ 1;
      if (sibling >= levels[l].size()) continue;
      if (!first) out.push_back(',');
      first = false;
      out.append(1, '"').append(b64[l][sibling]).push_back('"');
    }
    out.append("]}").append(cert_member_).push_back('}');
    events[i]->signature = std::move(out);
  }
  return Status::Ok();
}

StatusOr<std::string> EventSigner::SignBytes(std::string_view data) const {
  const std::string digest = Sha256(data);
  // A prepared signing context from the pool (setting one up costs more than a P-256 signature).
  EVP_PKEY_CTX* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(key_->mu);
    if (!key_->idle.empty()) {
      ctx = key_->idle.back();
      key_->idle.pop_back();
    }
  }
  if (ctx == nullptr) {
    ctx = EVP_PKEY_CTX_new(key_->pkey.get(), nullptr);
    if (!ctx || EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, Sha256Md()) != 1 ||
        (alg_ == "RS256" && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)) {
      EVP_PKEY_CTX_free(ctx);
      return Internal("signing: " + OpenSslError());
    }
  }
  size_t len = static_cast<size_t>(EVP_PKEY_get_size(key_->pkey.get()));
  std::string sig(len, '\0');
  int ok = EVP_PKEY_sign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
  {
    std::lock_guard<std::mutex> lock(key_->mu);
    key_->idle.push_back(ctx);
  }
  if (ok != 1) return Internal("signing: " + OpenSslError());
  sig.resize(len);
  return sig;
}

// ---------------------------------------------------------------------------------------------
// TrustStore

namespace {

// What is known about one certificate, whatever event it came with.
struct CertInfo {
  X509Ptr cert;
  PkeyPtr pkey;  // a reference taken from the certificate
  std::vector<std::string> identities;
  int64_t not_before = 0, not_after = 0;
  VerifyVerdict verdict;  // of the chain, key usage and key strength (not the dates)
  int64_t checked_at = 0;
};

VerifyVerdict Fail(const char* code, std::string message) { return VerifyVerdict{code, std::move(message)}; }

constexpr size_t kMaxCertificateBase64 = 16 * 1024;
constexpr size_t kMaxCachedCertificates = 4096;

}  // namespace

struct TrustStore::Impl {
  std::unique_ptr<X509_STORE, StoreFree> store;  // null without a CA bundle
  std::map<std::string, X509Ptr> pinned;         // SHA-256 hex of the DER -> certificate
  mutable std::mutex mu;
  mutable std::unordered_map<std::string, std::shared_ptr<const CertInfo>> cache;  // key: SHA-256 of the base64 text
  // Batch signatures already checked: SHA-256 of (certificate, sender, signed string, value)
  // -> when the check expires. The events of one batch share one signature; it is verified
  // once, and again after a minute (certificate dates are checked on each verification).
  mutable std::unordered_map<std::string, int64_t> verified_trees;
  static constexpr size_t kMaxVerifiedTrees = 4096;
  static constexpr int64_t kVerifiedTreeTtlS = 60;

  std::shared_ptr<const CertInfo> Examine(X509Ptr cert) const {
    auto info = std::make_shared<CertInfo>();
    info->identities = Identities(cert.get());
    info->not_before = AsnTimeToUnix(X509_get0_notBefore(cert.get()));
    info->not_after = AsnTimeToUnix(X509_get0_notAfter(cert.get()));
    info->pkey.reset(X509_get_pubkey(cert.get()));
    std::string why;
    const std::string fp = Sha256Hex(CertDer(cert.get()));
    if (!info->pkey) {
      info->verdict = Fail("signature_malformed", "the certificate carries no usable public key");
    } else if (AlgorithmFor(info->pkey.get(), &why).empty()) {
      info->verdict = Fail("weak_key", "certificate " + fp.substr(0, 16) + ": " + why);
    } else if (!HasDigitalSignatureUsage(cert.get())) {
      info->verdict = Fail("certificate_key_usage", "certificate " + fp.substr(0, 16) + ": keyUsage does not allow digitalSignature");
    } else if (pinned.count(fp)) {
      // Pinned: trusted as it is (dates are checked on every use).
    } else if (!store) {
      info->verdict = Fail("certificate_untrusted", "certificate " + fp.substr(0, 16) + " (" + JoinIdentities(info->identities) +
                                                        ") is not pinned in trust_dir");
    } else {
      std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
      if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
        info->verdict = Fail("certificate_untrusted", "cannot set up chain verification: " + OpenSslError());
      } else if (X509_verify_cert(ctx.get()) != 1) {
        int err = X509_STORE_CTX_get_error(ctx.get());
        std::string what = X509_verify_cert_error_string(err);
        ERR_clear_error();
        if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID) {
          info->verdict = Fail("certificate_expired", "certificate of " + JoinIdentities(info->identities) + ": " + what);
        } else {
          info->verdict = Fail("certificate_untrusted", "certificate of " + JoinIdentities(info->identities) + ": " + what);
        }
      }
    }
    info->cert = std::move(cert);
    info->checked_at = static_cast<int64_t>(std::time(nullptr));
    return info;
  }
};

TrustStore::~TrustStore() = default;

StatusOr<std::unique_ptr<TrustStore>> TrustStore::Load(const SecurityConfig& config) {
  std::unique_ptr<TrustStore> t(new TrustStore());
  t->impl_ = std::make_unique<Impl>();
  t->max_age_s_ = config.max_signature_age_s;
  if (config.trust_ca_file.empty() && config.trust_dir.empty()) {
    return InvalidArgument("[security]: verifying inbound events needs trust_ca_file or trust_dir");
  }
  if (!config.trust_ca_file.empty()) {
    const std::string path = config.trust_ca_file;
    if (::access(path.c_str(), R_OK) != 0) return NotFound(path + ": cannot read the CA bundle (trust_ca_file)");
    t->impl_->store.reset(X509_STORE_new());
    if (X509_STORE_load_file(t->impl_->store.get(), path.c_str()) != 1) {
      return InvalidArgument(path + ": not a PEM CA bundle: " + OpenSslError());
    }
  }
  if (!config.trust_dir.empty()) {
    const std::string dir = config.trust_dir;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return NotFound(dir + ": cannot open the trust_dir folder");
    std::vector<std::string> names;
    while (dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n.size() > 4 && (n.compare(n.size() - 4, 4, ".pem") == 0 || n.compare(n.size() - 4, 4, ".crt") == 0)) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      auto pem = ReadFile(dir + "/" + n);
      if (!pem.ok()) return pem.status();
      X509Ptr cert = ParsePemCert(*pem);
      if (!cert) return InvalidArgument(dir + "/" + n + ": not a PEM certificate");
      t->impl_->pinned.emplace(Sha256Hex(CertDer(cert.get())), std::move(cert));
    }
  }
  return t;
}

size_t TrustStore::pinned() const { return impl_->pinned.size(); }

size_t TrustStore::cached() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.size();
}

VerifyVerdict TrustStore::VerifyDetached(const std::string& cert_b64, const std::string& cert_ref, const std::string& data,
                                         const std::string& signature, bool rsa_expected, const std::string& mpid) const {
  // A participant certificate is a few kilobytes; anything larger is not one.
  if (cert_b64.size() > kMaxCertificateBase64) {
    return Fail("signature_malformed", "signature certificate: " + std::to_string(cert_b64.size()) + " characters, more than " +
                                           std::to_string(kMaxCertificateBase64));
  }
  if (cert_b64.empty() && cert_ref.empty()) return Fail("signature_malformed", "signature: no certificate");
  // The certificate: from the cache, or parsed and examined once.
  std::shared_ptr<const CertInfo> info;
  const std::string cache_key = cert_b64.empty() ? "ref:" + cert_ref : "b64:" + Sha256(cert_b64);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->cache.find(cache_key);
    // Re-examined hourly, so that a CA bundle's verdict does not live for ever.
    if (it != impl_->cache.end() && now - it->second->checked_at < 3600) info = it->second;
  }
  if (!info) {
    X509Ptr cert;
    if (!cert_b64.empty()) {
      auto pem = Base64Decode(cert_b64);
      if (!pem.ok()) return Fail("signature_malformed", "signature certificate: " + pem.status().message());
      cert = ParsePemCert(*pem);
      if (!cert) {
        ERR_clear_error();
        return Fail("signature_malformed", "signature certificate: not a PEM certificate");
      }
    } else {
      auto it = impl_->pinned.find(cert_ref);
      if (it == impl_->pinned.end()) return Fail("certificate_untrusted", "certSha256 " + cert_ref.substr(0, 16) + " is not pinned in trust_dir");
      X509_up_ref(it->second.get());
      cert.reset(it->second.get());
    }
    info = impl_->Examine(std::move(cert));
    // Only certificates that chain to the trust store are remembered: junk certificates from
    // a hostile publisher cost a check each, never memory.
    if (info->verdict.ok()) {
      std::lock_guard<std::mutex> lock(impl_->mu);
      if (impl_->cache.size() >= kMaxCachedCertificates) impl_->cache.clear();
      impl_->cache[cache_key] = info;
    }
  }
  if (!info->verdict.ok()) return info->verdict;
  if (now < info->not_before) return Fail("certificate_expired", "certificate of " + JoinIdentities(info->identities) + " is not valid before " + IsoUtc(info->not_before));
  if (now > info->not_after) return Fail("certificate_expired", "certificate of " + JoinIdentities(info->identities) + " expired " + IsoUtc(info->not_after));
  if (!mpid.empty() && std::find(info->identities.begin(), info->identities.end(), mpid) == info->identities.end()) {
    return Fail("sender_mismatch", "the certificate names " + JoinIdentities(info->identities) + ", the sender is " + mpid);
  }
  const bool rsa = EVP_PKEY_get_base_id(info->pkey.get()) == EVP_PKEY_RSA;
  if (rsa_expected != rsa) return Fail("signature_malformed", std::string("signature algorithm ") + (rsa_expected ? "RS256" : "ES256") +
                                                                " does not match the certificate's key type");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, Sha256Md(), nullptr, info->pkey.get()) != 1) {
    ERR_clear_error();
    return Fail("signature_invalid", "cannot set up verification");
  }
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(data.data()), data.size());
  ERR_clear_error();
  if (ok != 1) return Fail("signature_invalid", "the signature does not verify with the certificate of " + JoinIdentities(info->identities));
  return VerifyVerdict();
}

VerifyVerdict TrustStore::Verify(const Event& e) const {
  if (e.signature.empty()) return Fail("signature_missing", "the event carries no signature");
  // The signature object is small and untrusted: parse it fully, then check every member.
  std::string alg, date, hash, value, cert_b64, cert_ref;
  bool has_tree = false;
  uint64_t tree_size = 0, tree_index = 0;
  std::vector<std::string> tree_path;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(e.signature);
    auto obj = v.extract<Poco::JSON::Object::Ptr>();
    auto str = [&](const char* k, std::string* out) {
      if (!obj->has(k)) return;
      Poco::Dynamic::Var m = obj->get(k);
      if (!m.isString()) throw std::runtime_error(std::string("signature ") + k + ": not a string");
      *out = m.extract<std::string>();
    };
    str("alg", &alg);
    str("date", &date);
    str("contentHash", &hash);
    str("value", &value);
    str("certificate", &cert_b64);
    str("certSha256", &cert_ref);
    if (obj->has("tree")) {
      // A batch signature's inclusion proof: {"size":N,"index":i,"path":["<base64>",...]}.
      has_tree = true;
      Poco::Dynamic::Var t = obj->get("tree");
      if (t.type() != typeid(Poco::JSON::Object::Ptr)) throw std::runtime_error("signature tree: not an object");
      auto tree = t.extract<Poco::JSON::Object::Ptr>();
      auto count = [&](const char* k) -> uint64_t {
        if (!tree->has(k)) throw std::runtime_error(std::string("signature tree: no ") + k);
        Poco::Dynamic::Var m = tree->get(k);
        if (!m.isInteger()) throw std::runtime_error(std::string("signature tree ") + k + ": not an integer");
        const int64_t n = m.convert<int64_t>();
        if (n < 0 || n > (int64_t{1} << 40)) throw std::runtime_error(std::string("signature tree ") + k + ": out of range");
        return static_cast<uint64_t>(n);
      };
      tree_size = count("size");
      tree_index = count("index");
      if (!tree->has("path") || tree->get("path").type() != typeid(Poco::JSON::Array::Ptr)) {
        throw std::runtime_error("signature tree path: not an array");
      }
      auto path = tree->get("path").extract<Poco::JSON::Array::Ptr>();
      if (path->size() > 64) throw std::runtime_error("signature tree path: longer than any tree");
      for (size_t i = 0; i < path->size(); ++i) {
        Poco::Dynamic::Var h = path->get(static_cast<unsigned>(i));
        if (!h.isString()) throw std::runtime_error("signature tree path: not a list of strings");
        auto raw = Base64Decode(h.extract<std::string>());
        if (!raw.ok() || raw->size() != 32) throw std::runtime_error("signature tree path: not base64 of 32 bytes");
        tree_path.push_back(std::move(*raw));
      }
    }
  } catch (const std::exception& ex) {
    return Fail("signature_malformed", std::string("signature: ") + ex.what());
  }
  if (alg != "RS256" && alg != "ES256") return Fail("signature_malformed", "signature alg: \"" + alg + "\" (RS256 or ES256 expected)");
  if (date.empty() || hash.empty() || value.empty()) return Fail("signature_malformed", "signature: date, contentHash and value are required");
  if (cert_b64.empty() && cert_ref.empty()) return Fail("signature_malformed", "signature: neither certificate nor certSha256");

  // The content hash covers the exact payload bytes as they arrived.
  if (Base64Encode(Sha256(e.payload)) != hash) return Fail("content_hash_mismatch", "signature contentHash does not match the payload");
  auto sig = Base64Decode(value);
  if (!sig.ok()) return Fail("signature_malformed", "signature value: " + sig.status().message());

  const bool rsa_alg = alg == "RS256";
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (!has_tree) {
    VerifyVerdict v = VerifyDetached(cert_b64, cert_ref, EventStringToSign(e, date, hash), *sig, rsa_alg, e.sender.mpid);
    if (!v.ok()) return v;
  } else {
    // The event's leaf, its proof up to the root, and the signature over the root.
    std::string root;
    if (!MerkleRootFromPath(MerkleLeafHash(EventStringToSign(e, date, hash)), tree_index, tree_size, tree_path, &root)) {
      return Fail("signature_invalid", "signature tree: the inclusion proof does not lead to a root of a tree of " +
                                           std::to_string(tree_size) + " at index " + std::to_string(tree_index));
    }
    const std::string signed_string = TreeStringToSign(date, tree_size, root);
    const std::string key = Sha256((cert_b64.empty() ? "ref:" + cert_ref : Sha256(cert_b64)) + "\n" + e.sender.mpid + "\n" +
                                   alg + "\n" + signed_string + "\n" + value);
    bool known = false;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      auto it = impl_->verified_trees.find(key);
      known = it != impl_->verified_trees.end() && it->second > now;
    }
    if (!known) {
      VerifyVerdict v = VerifyDetached(cert_b64, cert_ref, signed_string, *sig, rsa_alg, e.sender.mpid);
      if (!v.ok()) return v;
      std::lock_guard<std::mutex> lock(impl_->mu);
      if (impl_->verified_trees.size() >= Impl::kMaxVerifiedTrees) impl_->verified_trees.clear();
      impl_->verified_trees[key] = now + Impl::kVerifiedTreeTtlS;
    }
  }
  // The date is covered by the signature: only now is it worth reading.
  int64_t signed_at = 0;
  if (!ParseIsoUtc(date, &signed_at)) {
    return Fail("signature_malformed", "signature date: \"" + date + "\" is not YYYY-MM-DDTHH:MM:SSZ");
  }
  if (signed_at > now + 300) return Fail("signature_stale", "signature dated " + date + ", in the future (clock skew?)");
  if (max_age_s_ > 0 && now - signed_at > max_age_s_) {
    return Fail("signature_stale", "signature dated " + date + ", older than " + std::to_string(max_age_s_ / 86400) +
                                       " day(s): too old to tell from a replay");
  }
  return VerifyVerdict();
}

// ---------------------------------------------------------------------------------------------
// Policy

StatusOr<Policy> Policy::Load(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return NotFound(path + ": cannot read the entitlement policy");
  return Parse(*text, path);
}

StatusOr<Policy> Policy::Parse(const std::string& text, const std::string& file) {
  auto sections = ParseIni(text, file);
  if (!sections.ok()) return sections.status();
  Policy p;
  for (ConfigSection& sec : *sections) {
    if (sec.name() == "policy") {
      std::string d = sec.GetString("default", "deny");
      if (d != "deny" && d != "allow") return sec.Error("default", "must be deny or allow (got \"" + d + "\")");
      p.default_allow_ = d == "allow";
    } else if (sec.name() == "participants") {
      p.has_participants_ = true;
      for (const ConfigSection::Entry& e : sec.entries()) {
        e.used = true;
        std::set<std::string>& roles = p.participants_[e.key];
        for (const std::string& r : SplitList(e.value)) roles.insert(r);
        if (roles.empty()) return sec.Error(e.key, "lists no role");
      }
    } else if (sec.name().rfind("interface.", 0) == 0 && sec.name().size() > 10) {
      Rule r;
      auto senders = sec.GetRequired("senders");
      if (!senders.ok()) return senders.status();
      auto receivers = sec.GetRequired("receivers");
      if (!receivers.ok()) return receivers.status();
      for (const std::string& s : SplitList(*senders)) r.senders.insert(s);
      for (const std::string& s : SplitList(*receivers)) r.receivers.insert(s);
      p.rules_[sec.name().substr(10)] = std::move(r);
    } else {
      return InvalidArgument(sec.Where("") + ": unknown section (expected [policy], [participants] or [interface.TYPE])");
    }
    GW_RETURN_IF_ERROR(sec.CheckAllUsed());
  }
  return p;
}

namespace {
std::string JoinSet(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
  return out.empty() ? "nobody" : out;
}
}  // namespace

bool Policy::MaySend(const std::string& type, const std::string& role, std::string* why) const {
  auto it = rules_.find(type);
  if (it == rules_.end()) {
    if (!default_allow_ && why) *why = "not entitled: the policy lists no [interface." + type + "] and its default is deny";
    return default_allow_;
  }
  if (it->second.senders.count(role) || it->second.senders.count("*")) return true;
  if (why) *why = "not entitled: role " + (role.empty() ? std::string("(none)") : role) + " may not send " + type + " (senders: " + JoinSet(it->second.senders) + ")";
  return false;
}

bool Policy::HoldsRole(const std::string& mpid, const std::string& role, std::string* why) const {
  if (!has_participants_) return true;
  auto it = participants_.find(mpid);
  if (it != participants_.end() && it->second.count(role)) return true;
  if (why) {
    *why = it == participants_.end() ? "not entitled: " + mpid + " is not listed in [participants]"
                                     : "not entitled: " + mpid + " does not hold role " + role + " (it holds " + JoinSet(it->second) + ")";
  }
  return false;
}

bool Policy::MayReceive(const std::string& type, const std::vector<std::string>& roles, std::string* why) const {
  auto it = rules_.find(type);
  if (it == rules_.end()) {
    if (!default_allow_ && why) *why = "not entitled: the policy lists no [interface." + type + "] and its default is deny";
    return default_allow_;
  }
  if (it->second.receivers.count("*")) return true;
  for (const std::string& r : roles) if (it->second.receivers.count(r)) return true;
  if (why) {
    std::string mine;
    for (const std::string& r : roles) if (!r.empty()) mine += (mine.empty() ? "" : ", ") + r;
    *why = "not entitled: this participant (" + (mine.empty() ? std::string("no role") : mine) + ") may not receive " + type +
           " (receivers: " + JoinSet(it->second.receivers) + ")";
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// PayloadCipher

namespace {
constexpr char kSealMagic[] = "GWE1";
constexpr size_t kIdLen = 4, kNonceLen = 12, kTagLen = 16, kHeaderLen = 4 + kIdLen + kNonceLen;
}  // namespace

StatusOr<std::string> ParseHexKey(const std::string& text, const std::string& what) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.size() != 64) return InvalidArgument(what + ": an AES-256 key must be 64 hex digits (got " + std::to_string(t.size()) + " characters)");
  std::string key(32, '\0');
  for (size_t i = 0; i < 32; ++i) {
    auto nib = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib(t[2 * i]), lo = nib(t[2 * i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgument(what + ": not a hex digit at position " + std::to_string(hi < 0 ? 2 * i + 1 : 2 * i + 2));
    key[i] = static_cast<char>(hi * 16 + lo);
  }
  OPENSSL_cleanse(t.data(), t.size());
  return key;
}

StatusOr<std::shared_ptr<const PayloadCipher>> PayloadCipher::FromKeys(const std::vector<std::string>& keys) {
  auto c = std::make_shared<PayloadCipher>();
  for (const std::string& k : keys) {
    if (k.size() != 32) return InvalidArgument("journal key: must be 32 bytes");
    static std::atomic<uint64_t> next_serial{1};
    c->keys_.push_back(KeyEntry{Sha256(k).substr(0, kIdLen), k, next_serial++});
  }
  if (c->keys_.empty()) return InvalidArgument("journal key: none given");
  return std::shared_ptr<const PayloadCipher>(std::move(c));
}

StatusOr<std::shared_ptr<const PayloadCipher>> PayloadCipher::Load(const SecurityConfig& config) {
  std::vector<std::string> paths;
  if (!config.journal_key_credential.empty()) {
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir) {
      return FailedPrecondition("[security] journal_key_credential = " + config.journal_key_credential +
                                ": $CREDENTIALS_DIRECTORY is not set (give the unit LoadCredential=" + config.journal_key_credential + ":PATH)");
    }
    paths.push_back(std::string(dir) + "/" + config.journal_key_credential);
  } else if (!config.journal_key_file.empty()) {
    paths.push_back(config.journal_key_file);
  } else {
    if (!config.journal_old_key_files.empty()) return InvalidArgument("[security] journal_old_key_files: needs a current journal_key_file");
    return std::shared_ptr<const PayloadCipher>();
  }
  for (const std::string& p : config.journal_old_key_files) paths.push_back(p);
  std::vector<std::string> keys;
  for (const std::string& p : paths) {
    auto text = ReadSecretFile(p);
    if (!text.ok()) return text.status();
    auto key = ParseHexKey(*text, p);
    if (!key.ok()) return key.status();
    keys.push_back(std::move(key.value()));
  }
  auto c = FromKeys(keys);
  for (std::string& k : keys) OPENSSL_cleanse(k.data(), k.size());
  return c;
}

bool PayloadCipher::IsSealed(std::string_view value) {
  return value.size() >= kHeaderLen + kTagLen && value.compare(0, 4, kSealMagic) == 0;
}

std::string PayloadCipher::current_key_id() const { return ToHex(keys_.front().id); }

namespace {

// Each thread keeps one AES-256-GCM context per direction with its key schedule set, so that
// a payload costs setting a nonce rather than allocating a context and expanding the key, and
// draws nonces from a buffer of random bytes refilled 64 nonces at a time rather than calling
// the DRBG (and its locks) per payload. The nonces stay random, as before.
struct ThreadCipher {
  struct Slot {
    uint64_t serial = 0;
    std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx;
  };
  Slot slots[2];  // [0] decrypt, [1] encrypt
  unsigned char nonces[64 * kNonceLen];
  size_t nonce_used = sizeof nonces;
  pid_t pid = 0;  // whose nonces these are

  // The context for `key` (raw, 32 bytes) named `serial`, ready for a new nonce; null when
  // OpenSSL cannot make one.
  EVP_CIPHER_CTX* For(uint64_t serial, const std::string& key, bool encrypt) {
    Slot& s = slots[encrypt ? 1 : 0];
    if (!s.ctx || s.serial != serial) {
      s.serial = 0;
      s.ctx.reset(EVP_CIPHER_CTX_new());
      if (!s.ctx || EVP_CipherInit_ex(s.ctx.get(), Aes256Gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                                      nullptr, encrypt ? 1 : 0) != 1) {
        s.ctx.reset();
        return nullptr;
      }
      s.serial = serial;
    }
    return s.ctx.get();
  }

  void NextNonce(unsigned char* out) {
    // A process forked from this one must not hand out the nonces its parent still holds.
    const pid_t self = getpid();
    if (self != pid) {
      pid = self;
      nonce_used = sizeof nonces;
    }
    if (nonce_used == sizeof nonces) {
      if (RAND_bytes(nonces, sizeof nonces) != 1) std::abort();  // no randomness: sealing would be unsafe
      nonce_used = 0;
    }
    std::memcpy(out, nonces + nonce_used, kNonceLen);
    nonce_used += kNonceLen;
  }
};

ThreadCipher& ThisThreadCipher() {
  thread_local ThreadCipher tc;
  return tc;
}

}  // namespace

std::string PayloadCipher::Seal(std::string_view plain, std::string_view aad) const {
  const KeyEntry& k = keys_.front();
  std::string out(kHeaderLen + plain.size() + kTagLen, '\0');
  std::memcpy(out.data(), kSealMagic, 4);
  std::memcpy(out.data() + 4, k.id.data(), kIdLen);
  unsigned char* nonce = reinterpret_cast<unsigned char*>(out.data() + 4 + kIdLen);
  ThreadCipher& tc = ThisThreadCipher();
  tc.NextNonce(nonce);
  EVP_CIPHER_CTX* ctx = tc.For(k.serial, k.key, /*encrypt=*/true);
  int len = 0;
  unsigned char* ct = reinterpret_cast<unsigned char*>(out.data() + kHeaderLen);
  bool ok = ctx && EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()), static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, ct, &len, reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagLen, ct + plain.size()) == 1;
  if (!ok) std::abort();  // AES-GCM with a valid key does not fail short of memory
  return out;
}

StatusOr<std::string> PayloadCipher::Open(std::string_view sealed, std::string_view aad) const {
  if (!IsSealed(sealed)) return DataLoss("sealed payload: too short or not sealed");
  std::string_view id = sealed.substr(4, kIdLen);
  const KeyEntry* k = nullptr;
  for (const KeyEntry& e : keys_) if (e.id == id) k = &e;
  if (!k) return DataLoss("sealed payload: encrypted with key " + ToHex(id) + ", which is not among the configured journal keys");
  const unsigned char* nonce = reinterpret_cast<const unsigned char*>(sealed.data() + 4 + kIdLen);
  size_t n = sealed.size() - kHeaderLen - kTagLen;
  const unsigned char* ct = reinterpret_cast<const unsigned char*>(sealed.data() + kHeaderLen);
  std::string out(n, '\0');
  unsigned char tag[kTagLen];
  std::memcpy(tag, sealed.data() + kHeaderLen + n, kTagLen);
  EVP_CIPHER_CTX* ctx = ThisThreadCipher().For(k->serial, k->key, /*encrypt=*/false);
  int len = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, ct, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagLen, tag) == 1;
  if (!ok || EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + len, &len) != 1) {
    ERR_clear_error();
    return DataLoss("sealed payload: authentication failed (altered, or moved from another row)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Security

std::string Security::CheckInbound(const Event& e, std::string* code, bool verify_signature) const {
  if (verify_signature && trust && (config.require_signatures || !e.signature.empty())) {
    VerifyVerdict v = trust->Verify(e);
    if (!v.ok()) {
      *code = v.code;
      return v.message;
    }
  }
  if (policy) {
    std::string why;
    // The signature proves the MPID; the role it claims must be one the market gave it.
    if (!policy->HoldsRole(e.sender.mpid, e.sender.role, &why)) {
      *code = "not_entitled";
      return why;
    }
    if (!policy->MaySend(e.type, e.sender.role, &why)) {
      *code = "not_entitled";
      return "sender " + e.sender.mpid + " " + why;
    }
    if (!policy->MayReceive(e.type, participant_roles, &why)) {
      *code = "not_entitled";
      return why;
    }
  }
  return "";
}

std::string Security::CheckOutbound(const Event& e) const {
  if (!policy || e.sender.mpid != participant_mpid) return "";
  // This participant speaks only in its own roles, whatever a local file claims.
  if (std::find(participant_roles.begin(), participant_roles.end(), e.sender.role) == participant_roles.end()) {
    std::string mine;
    for (const std::string& r : participant_roles) mine += (mine.empty() ? "" : ", ") + r;
    return "not entitled: role " + e.sender.role + " is not this participant's (" + mine + ")";
  }
  std::string why;
  if (!policy->MaySend(e.type, e.sender.role, &why)) return why;
  return "";
}

StatusOr<std::unique_ptr<Security>> LoadSecurity(const SecurityConfig& config, const GatewayInfo& gateway) {
  auto s = std::make_unique<Security>();
  s->config = config;
  s->participant_mpid = gateway.participant_mpid;
  for (const std::string& r : {gateway.participant_role, gateway.dip.role}) {
    if (!r.empty()) s->participant_roles.push_back(r);
  }
  if (!config.configured) return s;
  if (!config.key_file.empty()) {
    auto signer = EventSigner::Load(config, gateway.participant_mpid);
    if (!signer.ok()) return signer.status().Annotate("[security] key/certificate");
    s->signer = std::move(signer.value());
  }
  if (!config.trust_ca_file.empty() || !config.trust_dir.empty()) {
    auto trust = TrustStore::Load(config);
    if (!trust.ok()) return trust.status().Annotate("[security] trust store");
    s->trust = std::move(trust.value());
  }
  if (!config.policy_file.empty()) {
    auto policy = Policy::Load(config.policy_file);
    if (!policy.ok()) return policy.status().Annotate("[security] policy");
    s->policy = std::make_unique<Policy>(std::move(policy.value()));
  }
  auto cipher = PayloadCipher::Load(config);
  if (!cipher.ok()) return cipher.status().Annotate("[security] journal key");
  s->cipher = std::move(cipher.value());
  return s;
}

}  // namespace gw
