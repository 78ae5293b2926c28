// Governance and security on every event (DESIGN.md, "Security and governance"):
//
//   EventSigner    signs what this participant sends, with the DIP's scheme: SHA-256 content
//                  hash of the exact payload bytes, RSA PKCS#1 v1.5 SHA-256 (or ECDSA P-256)
//                  over a canonical string, and the signer's certificate in the envelope.
//   TrustStore     verifies what arrives from the market: content hash, signature, chain to a
//                  CA bundle or a pinned participant certificate, validity dates, key usage,
//                  and that the certificate names the envelope's sender MPID.
//   Policy         the entitlements of config/policy.ini: which roles may send and receive
//                  which interfaces.
//   PayloadCipher  AES-256-GCM for payloads at rest in the journal, with key rotation.
//
// The event signature is a JSON object in the envelope's `signature` member:
//   {"alg":"RS256"|"ES256","date":"2026-11-26T16:30:00Z","contentHash":"<base64 SHA-256>",
//    "value":"<base64 signature>","certificate":"<base64 of the PEM>"}
// (or "certSha256":"<hex>" instead of "certificate" when the certificate is not carried and
// the receiver has it pinned). The signed string is the JSON array
//   ["mhhs-event/1",id,type,eventCode,sender.mpid,sender.role,sender.dipId,
//    [[recipient.mpid,recipient.role,recipient.dipId],...],createdAt,correlationId,date,contentHash]
// written without spaces, so that no field can be shifted into another: every envelope
// member but the payload (covered by contentHash) and the signature itself is signed.
//
// Batch signatures (`[security] sign_batches = true`): one signature covers a whole batch (a
// file's events). Each event's string to sign becomes a leaf of a Merkle tree built as in
// RFC 9162 (leaf = SHA-256(0x00 || string), node = SHA-256(0x01 || left || right)); `value`
// signs the JSON array ["mhhs-tree/1",date,size,"<base64 root>"], and each event carries
// its own inclusion proof in a `tree` member: {"size":N,"index":i,"path":["<base64>",...]}.
// A receiver checks each event on its own (content hash, leaf, proof up to the root, the
// signature over the root), and checks a root's signature once for the whole batch.
//
// Thread-safety: every class here is immutable after Load() and safe to use from any thread
// (TrustStore's certificate cache is internally locked).
#ifndef GW_SECURITY_H_
#define GW_SECURITY_H_

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mhhs/connector.h"
#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw {

// `[security]` in gateway.ini. Relative paths are relative to the config file's folder.
struct SecurityConfig {
  bool configured = false;              // the section exists
  std::string key_file;                 // the participant's private key (PEM); "" : nothing is signed
  std::string certificate_file;         // its certificate (PEM)
  bool embed_certificate = true;        // carry the certificate in every signature
  std::string trust_ca_file;            // CA bundle (PEM) that participant certificates chain to
  std::string trust_dir;                // folder of pinned participant certificates (*.pem, *.crt)
  bool require_signatures = true;       // inbound events without a signature are quarantined
  // Inbound signatures older than this (or dated more than 5 minutes ahead) are refused: the
  // journal's dedupe remembers event ids only as long as it keeps events, so an old message
  // replayed after that would otherwise be taken again. Defaults to [journal] retention_days.
  int64_t max_signature_age_s = 0;      // 0: no limit
  std::string policy_file;              // entitlements; "" : no entitlement checks
  std::string journal_key_file;         // AES-256 key, 64 hex digits; "" with no credential: plaintext
  std::string journal_key_credential;   // name of a systemd credential holding the key
  std::vector<std::string> journal_old_key_files;  // earlier keys, for reading older rows
  bool sign_batches = false;            // one signature per batch over a Merkle tree (see above)
};

// Standard base64 (RFC 4648, with padding). Decoding is strict: kInvalidArgument on any
// character outside the alphabet, a bad length or misplaced padding.
std::string Base64Encode(std::string_view bytes);
StatusOr<std::string> Base64Decode(std::string_view text);
// SHA-256 of `bytes`, raw (32 bytes) and as lower-case hex.
std::string Sha256(std::string_view bytes);
std::string Sha256Hex(std::string_view bytes);

// The canonical string an event signature covers (see the file comment).
std::string EventStringToSign(const Event& e, const std::string& date, const std::string& content_hash);

// Merkle trees as in RFC 9162, section 2.1, over leaf hashes (32 bytes each, already
// SHA-256(0x00 || data)). MerkleLeafHash makes one; MerkleRoot and MerklePath work on all the
// leaves; MerkleRootFromPath recomputes the root from one leaf and its path, false when the
// path does not fit a tree of `size` leaves at `index`.
std::string MerkleLeafHash(std::string_view data);
std::string MerkleRoot(const std::vector<std::string>& leaves);
// The inclusion proof of every leaf, computed together with the root (n log n hashes).
std::vector<std::vector<std::string>> MerklePaths(const std::vector<std::string>& leaves, std::string* root = nullptr);
bool MerkleRootFromPath(const std::string& leaf, uint64_t index, uint64_t size, const std::vector<std::string>& path,
                        std::string* root);
// The string a batch signature covers: ["mhhs-tree/1",date,size,"<base64 root>"].
std::string TreeStringToSign(const std::string& date, uint64_t size, const std::string& root);

class EventSigner {
 public:
  // Loads the key and certificate of `config`. Refuses (kInvalidArgument / kPermissionDenied /
  // kNotFound, naming the file): a key readable by group or others, an RSA key below 2048 bits,
  // an EC key not on P-256, a certificate that does not belong to the key, or one whose subject
  // (CN or OU) does not name `participant_mpid` (an empty one skips that check, for tools).
  static StatusOr<std::unique_ptr<EventSigner>> Load(const SecurityConfig& config, const std::string& participant_mpid);
  ~EventSigner();
  EventSigner(const EventSigner&) = delete;
  EventSigner& operator=(const EventSigner&) = delete;

  // Fills e->signature for e->payload, dated `date` (ISO-8601 UTC, e.g. "2026-11-26T16:30:00Z").
  // Errors: kInternal when OpenSSL fails (it does not, short of memory).
  Status Sign(Event* e, const std::string& date) const;
  // Signs `events` together with one signature over a Merkle tree of their strings to sign;
  // each event's signature carries its inclusion proof (see the file comment).
  Status SignBatch(const std::vector<Event*>& events, const std::string& date) const;
  // True when [security] sign_batches asks for SignBatch().
  bool sign_batches() const { return sign_batches_; }
  // The raw signature over `data` (SHA-256; RSA PKCS#1 v1.5 or ECDSA DER), for other schemes
  // that use the same key, such as the DIP's request signing.
  StatusOr<std::string> SignBytes(std::string_view data) const;
  // The certificate as base64 of its PEM.
  const std::string& certificate_base64() const { return cert_b64_; }

  const std::string& algorithm() const { return alg_; }  // "RS256" or "ES256"
  // Seconds since the epoch when the certificate expires.
  int64_t certificate_not_after() const { return not_after_; }

 private:
  EventSigner() = default;
  struct Key;
  std::unique_ptr<Key> key_;
  std::string alg_;
  std::string cert_b64_;  // base64 of the PEM
  std::string cert_sha256_;
  std::string cert_member_;  // ,"certificate":"..." or ,"certSha256":"...", ready to append
  bool embed_ = true;
  bool sign_batches_ = false;
  int64_t not_after_ = 0;
};

// Why an inbound event was turned away; the code is the `reason` label on /metrics.
struct VerifyVerdict {
  std::string code;     // "" when valid
  std::string message;  // for the quarantine and the audit
  bool ok() const { return code.empty(); }
};

class TrustStore {
 public:
  // Loads the CA bundle and/or the pinned certificates. At least one must be given.
  // Errors name the file that could not be read or parsed.
  static StatusOr<std::unique_ptr<TrustStore>> Load(const SecurityConfig& config);
  ~TrustStore();
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;

  // Checks a detached signature over `data`: the certificate (base64 of its PEM, or when that
  // is empty the SHA-256 `cert_ref` of a pinned one) against the trust store, its validity
  // dates, key usage and key strength, and — when `mpid` is not empty — that it names `mpid`;
  // then `signature` (raw bytes) with its key, SHA-256, RSA PKCS#1 v1.5 when `rsa`, else ECDSA.
  // Codes as Verify().
  VerifyVerdict VerifyDetached(const std::string& cert_b64, const std::string& cert_ref, const std::string& data,
                               const std::string& signature, bool rsa, const std::string& mpid) const;

  // Checks e.signature against e.payload and the trust store. Codes: signature_missing,
  // signature_malformed, content_hash_mismatch, signature_invalid, certificate_untrusted,
  // certificate_expired, certificate_key_usage, weak_key, sender_mismatch, signature_stale.
  VerifyVerdict Verify(const Event& e) const;

  size_t pinned() const;
  size_t cached() const;

 private:
  TrustStore() = default;
  int64_t max_age_s_ = 0;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Entitlements: `[interface.TYPE]` sections with `senders` and `receivers` (role lists),
// `[policy] default = deny | allow` for types that have no section, and optionally
// `[participants]` (`MPID = role, role`): the roles each sender really holds, so that a signed
// event cannot claim a role its MPID does not have.
class Policy {
 public:
  // Errors: kNotFound, kInvalidArgument naming FILE:LINE and the key.
  static StatusOr<Policy> Load(const std::string& path);
  static StatusOr<Policy> Parse(const std::string& text, const std::string& file);

  // True when a participant in `role` may send events of `type`; otherwise `*why` says so.
  bool MaySend(const std::string& type, const std::string& role, std::string* why) const;
  // True when `[participants]` lists `role` for `mpid`, or the policy has no such section.
  bool HoldsRole(const std::string& mpid, const std::string& role, std::string* why) const;
  bool has_participants() const { return has_participants_; }
  // True when a participant holding any of `roles` may receive events of `type`.
  bool MayReceive(const std::string& type, const std::vector<std::string>& roles, std::string* why) const;

  size_t interfaces() const { return rules_.size(); }

 private:
  struct Rule {
    std::set<std::string> senders, receivers;
  };
  std::map<std::string, Rule> rules_;
  bool default_allow_ = false;
  // MPID -> the roles the market registered for it; checked only when the section exists.
  std::map<std::string, std::set<std::string>> participants_;
  bool has_participants_ = false;
};

// AES-256-GCM for payloads at rest. A sealed value is
//   "GWE1" | key id (4 bytes: the first bytes of SHA-256 of the key) | nonce (12) | ciphertext | tag (16)
// with `aad` (the event id) authenticated alongside, so a payload moved to another row fails.
class PayloadCipher {
 public:
  // The current key first, then older ones that may still be needed to read.
  // Errors: a key that is not 32 bytes.
  static StatusOr<std::shared_ptr<const PayloadCipher>> FromKeys(const std::vector<std::string>& keys);
  // Reads the key from `journal_key_file` or `$CREDENTIALS_DIRECTORY/journal_key_credential`
  // (64 hex digits, after the secret-file mode check), plus the old keys. Returns null when
  // neither is configured. Errors name the file.
  static StatusOr<std::shared_ptr<const PayloadCipher>> Load(const SecurityConfig& config);

  std::string Seal(std::string_view plain, std::string_view aad) const;
  // Errors: kDataLoss when the value was altered or sealed with a key this cipher lacks
  // (naming the key id).
  StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const;
  static bool IsSealed(std::string_view value);

  std::string current_key_id() const;  // hex

 private:
  struct KeyEntry {
    std::string id;   // 4 raw bytes
    std::string key;  // 32 raw bytes
    uint64_t serial;  // unique in the process: names the key in a thread's cached cipher context
  };
  std::vector<KeyEntry> keys_;
};

// Everything `[security]` sets up, loaded once at start and shared by the pipeline and the
// journal. Any member may be null: then that protection is off (the daemon says so at start).
struct Security {
  SecurityConfig config;
  std::string participant_mpid;
  std::vector<std::string> participant_roles;   // [gateway] participant_role and [dip] role
  std::unique_ptr<EventSigner> signer;           // signs kLocal events of this participant
  std::unique_ptr<TrustStore> trust;             // verifies kMarket events
  std::unique_ptr<Policy> policy;                // entitlements
  std::shared_ptr<const PayloadCipher> cipher;   // payloads at rest

  // Why an event from the market may not be taken in, or "" when it may: its signature
  // (when a trust store is configured), then the entitlements of its sender and of this
  // participant. `*code` gets the metrics reason.
  // With `verify_signature` false (a source that authenticated its input itself), only the
  // entitlements are checked.
  std::string CheckInbound(const Event& e, std::string* code, bool verify_signature = true) const;
  // Why this participant may not send `e`, or "".
  std::string CheckOutbound(const Event& e) const;
};

// Loads what `config` names. Errors name the key or file.
StatusOr<std::unique_ptr<Security>> LoadSecurity(const SecurityConfig& config, const GatewayInfo& gateway);

// Parses a 64-hex-digit AES-256 key (a trailing line break is allowed). `what` names the
// source in errors.
StatusOr<std::string> ParseHexKey(const std::string& text, const std::string& what);

// Seconds since the epoch as ISO-8601 UTC, "2026-11-26T16:30:00Z".
std::string IsoUtc(int64_t unix_s);
// Parses exactly that form back; false for anything else.
bool ParseIsoUtc(const std::string& text, int64_t* unix_s);

}  // namespace gw

#endif  // GW_SECURITY_H_
