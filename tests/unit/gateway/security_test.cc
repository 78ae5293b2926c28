// Signing, verification, entitlements and payload encryption, with keys and certificates made
// by openssl at test time (MakeSigningPki).
#include "gw/security.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <thread>

#include "gw/journal.h"
#include "tests/support/test_support.h"

namespace gw {
namespace {

using gw::testing::TempDir;

Event MakeEvent(const std::string& mpid = "UDMS", const std::string& id = "UDMS-0000475656-1") {
  Event e;
  e.id = id;
  e.type = "IF-021";
  e.event_code = "[ActivePower]";
  e.sender = Party{mpid, "SDS", "1009012345"};
  e.recipients = {Party{"MRCY", "X", ""}};
  e.created_at = "2026-03-02T15:31:51+00:00";
  e.payload = R"({"mpan":"1200023305967","v":"1.250"})";
  return e;
}

class SecurityTest : public ::testing::Test {
 protected:
  static std::string Pki(const std::string& name) { return gw::testing::SharedPki(name); }

  SecurityConfig Signing(const std::string& name, bool embed = true) {
    SecurityConfig c;
    c.configured = true;
    c.key_file = Pki(name + ".key");
    c.certificate_file = Pki(name + ".crt");
    c.embed_certificate = embed;
    return c;
  }

  std::unique_ptr<EventSigner> Signer(const std::string& name, const std::string& mpid = "UDMS", bool embed = true) {
    auto s = EventSigner::Load(Signing(name, embed), mpid);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s.value()) : nullptr;
  }

  std::unique_ptr<TrustStore> Trust(const std::string& ca = "ca.crt", const std::string& dir = "") {
    SecurityConfig c;
    c.configured = true;
    if (!ca.empty()) c.trust_ca_file = Pki(ca);
    c.trust_dir = dir;
    auto t = TrustStore::Load(c);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t.value()) : nullptr;
  }

  Event Signed(const std::string& signer, const std::string& mpid = "UDMS") {
    Event e = MakeEvent(mpid);
    auto s = Signer(signer, mpid == "UDMS" ? "UDMS" : mpid);
    EXPECT_TRUE(s != nullptr);
    if (s) {
      EXPECT_TRUE(s->Sign(&e, "2026-11-26T16:30:00Z").ok());
    }
    return e;
  }

};

TEST(Base64Test, RoundTripsAndRejectsBadInput) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("\0\xff\x10", 3)}) {
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(Base64Decode("Zm9").ok()) << "length not a multiple of 4";
  EXPECT_FALSE(Base64Decode("Zm9v!mFy").ok()) << "character outside the alphabet";
  EXPECT_FALSE(Base64Decode("Z=9v").ok()) << "padding in the middle";
}

TEST_F(SecurityTest, SignedEventVerifiesWithRsaAndEcdsa) {
  auto trust = Trust();
  for (const char* name : {"udms", "ec-udms"}) {
    Event e = Signed(name);
    ASSERT_FALSE(e.signature.empty());
    EXPECT_NE(e.signature.find(std::string("\"alg\":\"") + (name[0] == 'e' ? "ES256" : "RS256")), std::string::npos) << e.signature;
    VerifyVerdict v = trust->Verify(e);
    EXPECT_TRUE(v.ok()) << name << ": " << v.code << " " << v.message;
    // The envelope carries it unchanged.
    EXPECT_NE(ToEnvelopeJson(e).find("\"signature\":" + e.signature), std::string::npos);
  }
}

TEST_F(SecurityTest, EveryAlterationIsCaughtWithItsReason) {
  auto trust = Trust();
  const Event good = Signed("udms");
  struct Case {
    const char* name;
    std::function<void(Event*)> alter;
    const char* code;
  };
  std::vector<Case> cases = {
      {"payload changed", [](Event* e) { e->payload[10] = 'X'; }, "content_hash_mismatch"},
      {"id changed", [](Event* e) { e->id += "2"; }, "signature_invalid"},
      {"type changed", [](Event* e) { e->type = "IF-022"; }, "signature_invalid"},
      {"createdAt changed", [](Event* e) { e->created_at = "2026-03-03T15:31:51+00:00"; }, "signature_invalid"},
      {"sender changed", [](Event* e) { e->sender.mpid = "MRCY"; }, "sender_mismatch"},
      {"sender role changed", [](Event* e) { e->sender.role = "ADS"; }, "signature_invalid"},
      {"re-addressed", [](Event* e) { e->recipients[0].mpid = "BGAS"; }, "signature_invalid"},
      {"recipient added", [](Event* e) { e->recipients.push_back(Party{"BGAS", "X", ""}); }, "signature_invalid"},
      {"correlationId changed", [](Event* e) { e->correlation_id = "other"; }, "signature_invalid"},
      {"no signature", [](Event* e) { e->signature.clear(); }, "signature_missing"},
      {"not JSON", [](Event* e) { e->signature = "{\"alg\":"; }, "signature_malformed"},
      {"value not a string", [](Event* e) {
         size_t p = e->signature.find("\"value\":\"");
         e->signature.replace(p, 9, "\"value\":7,\"x\":\"");
       }, "signature_malformed"},
      {"value truncated", [](Event* e) {
         size_t p = e->signature.find("\"value\":\"") + 9;
         e->signature.erase(p, 8);
       }, "signature_invalid"},
      {"value forged", [](Event* e) {
         size_t p = e->signature.find("\"value\":\"") + 9;
         e->signature[p] = e->signature[p] == 'A' ? 'B' : 'A';
       }, "signature_invalid"},
      {"unknown alg", [](Event* e) {
         size_t p = e->signature.find("RS256");
         e->signature.replace(p, 5, "HS256");
       }, "signature_malformed"},
  };
  for (const Case& c : cases) {
    Event e = good;
    c.alter(&e);
    VerifyVerdict v = trust->Verify(e);
    EXPECT_EQ(v.code, c.code) << c.name << ": " << v.message;
    EXPECT_FALSE(v.message.empty()) << c.name;
  }
}

// RFC 9162's definition, written the way the RFC states it, to check the bottom-up build.
std::string RfcRoot(const std::vector<std::string>& d) {
  if (d.size() == 1) return d[0];
  size_t k = 1;
  while (k * 2 < d.size()) k *= 2;
  std::string in("\x01", 1);
  in += RfcRoot(std::vector<std::string>(d.begin(), d.begin() + k));
  in += RfcRoot(std::vector<std::string>(d.begin() + k, d.end()));
  return Sha256(in);
}

TEST(MerkleTest, RootsAndProofsFollowRfc9162) {
  // The empty tree and a one-leaf tree as the RFC defines them.
  EXPECT_EQ(MerkleRoot({}), Sha256(""));
  EXPECT_EQ(MerkleLeafHash("x"), Sha256(std::string("\x00x", 2)));
  for (size_t n = 1; n <= 40; ++n) {
    std::vector<std::string> leaves;
    for (size_t i = 0; i < n; ++i) leaves.push_back(MerkleLeafHash("event " + std::to_string(i)));
    const std::string root = MerkleRoot(leaves);
    ASSERT_EQ(root, RfcRoot(leaves)) << n << " leaves";
    auto paths = MerklePaths(leaves);
    ASSERT_EQ(paths.size(), n);
    for (size_t i = 0; i < n; ++i) {
      std::string got;
      ASSERT_TRUE(MerkleRootFromPath(leaves[i], i, n, paths[i], &got)) << n << "/" << i;
      EXPECT_EQ(got, root) << n << "/" << i;
      // The same proof claims nothing for another leaf or index. (It may fit another tree size
      // with the same root; a batch signature binds the size in what it signs.)
      if (n > 1) {
        EXPECT_FALSE(MerkleRootFromPath(leaves[(i + 1) % n], i, n, paths[i], &got) && got == root) << n << "/" << i;
        EXPECT_FALSE(MerkleRootFromPath(leaves[i], (i + 1) % n, n, paths[i], &got) && got == root) << n << "/" << i;
      }
      EXPECT_FALSE(MerkleRootFromPath(leaves[i], n, n, paths[i], &got)) << "index beyond the tree";
      if (!paths[i].empty()) {
        std::vector<std::string> shorter(paths[i].begin(), paths[i].end() - 1);
        EXPECT_FALSE(MerkleRootFromPath(leaves[i], i, n, shorter, &got) && got == root) << n << "/" << i;
      }
    }
  }
}

// Each event's proof is its own path through the tree, whatever the tree's shape: a batch of
// every size from 1 to 33 (full trees, and last nodes that move up without a partner).
TEST_F(SecurityTest, EveryEventOfABatchOfAnySizeCarriesAProofThatVerifies) {
  auto trust = Trust();
  SecurityConfig c = Signing("ec-udms");
  c.sign_batches = true;
  auto signer = EventSigner::Load(c, "UDMS");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  for (int n = 1; n <= 33; ++n) {
    std::vector<Event> events;
    for (int i = 0; i < n; ++i) events.push_back(MakeEvent("UDMS", "UDMS-" + std::to_string(n) + "-" + std::to_string(i)));
    std::vector<Event*> ptrs;
    for (Event& e : events) ptrs.push_back(&e);
    ASSERT_TRUE((*signer)->SignBatch(ptrs, "2026-11-27T03:30:00Z").ok());
    for (const Event& e : events) {
      VerifyVerdict v = trust->Verify(e);
      EXPECT_TRUE(v.ok()) << "batch of " << n << ", " << e.id << ": " << v.code << " " << v.message;
    }
  }
}

TEST_F(SecurityTest, BatchSignaturesVerifyEachEventOnItsOwn) {
  auto trust = Trust();
  for (const char* name : {"udms", "ec-udms"}) {
    SecurityConfig c = Signing(name);
    c.sign_batches = true;
    auto signer = EventSigner::Load(c, "UDMS");
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    ASSERT_TRUE((*signer)->sign_batches());
    std::vector<Event> events;
    for (int i = 0; i < 7; ++i) {
      events.push_back(MakeEvent("UDMS", "UDMS-1-" + std::to_string(i)));
      events.back().payload = "{\"v\":\"" + std::to_string(i) + "\"}";
    }
    std::vector<Event*> ptrs;
    for (Event& e : events) ptrs.push_back(&e);
    ASSERT_TRUE((*signer)->SignBatch(ptrs, "2026-11-26T16:30:00Z").ok());
    for (const Event& e : events) {
      EXPECT_NE(e.signature.find("\"tree\":{\"size\":7,"), std::string::npos) << e.signature;
      VerifyVerdict v = trust->Verify(e);
      EXPECT_TRUE(v.ok()) << name << " " << e.id << ": " << v.code << " " << v.message;
    }
    // One event out of the batch, altered or given another's proof, fails on its own; the
    // others, whose root signature is already known good, still pass.
    Event changed = events[3];
    changed.payload = "{\"v\":\"9\"}";
    EXPECT_EQ(trust->Verify(changed).code, "content_hash_mismatch");
    Event renamed = events[3];
    renamed.id = "UDMS-1-99";
    EXPECT_EQ(trust->Verify(renamed).code, "signature_invalid");
    Event swapped = events[3];
    swapped.signature = events[4].signature;
    EXPECT_NE(trust->Verify(swapped).code, "") << "another event's proof";
    // Another index or tree size, a path that is not 32-byte hashes, a tree that is not one.
    const struct {
      const char* from;
      const char* to;
      const char* code;
    } edits[] = {{"\"index\":2", "\"index\":5", "signature_invalid"},
                 {"\"size\":7", "\"size\":8", "signature_invalid"},
                 {"\"path\":[", "\"path\":[\"AAAA\",", "signature_malformed"},
                 {"\"tree\":{", "\"tree\":7,\"x\":{", "signature_malformed"}};
    for (const auto& edit : edits) {
      Event x = events[2];
      size_t at = x.signature.find(edit.from);
      ASSERT_NE(at, std::string::npos) << edit.from;
      x.signature.replace(at, std::strlen(edit.from), edit.to);
      EXPECT_EQ(trust->Verify(x).code, edit.code) << edit.from << " -> " << edit.to;
    }
    // A tree signature is not a plain one: without its proof the value signs nothing of the event.
    Event stripped = events[0];
    size_t t = stripped.signature.find(",\"tree\":");
    size_t end = stripped.signature.find("]}", t) + 2;
    stripped.signature.erase(t, end - t);
    EXPECT_EQ(trust->Verify(stripped).code, "signature_invalid");
    EXPECT_TRUE(trust->Verify(events[6]).ok());
  }
}

TEST_F(SecurityTest, CertificateProblemsAreNamed) {
  auto trust = Trust();
  EXPECT_EQ(trust->Verify(Signed("expired-udms")).code, "certificate_expired");
  EXPECT_EQ(trust->Verify(Signed("rogue-udms")).code, "certificate_untrusted");
  EXPECT_EQ(trust->Verify(Signed("pinned-udms")).code, "certificate_untrusted") << "self-signed and not pinned";
  // A certificate for MRCY cannot sign as UDMS, even when its signature is good.
  Event e = MakeEvent("UDMS");
  auto mrcy = Signer("mrcy", "MRCY");
  ASSERT_TRUE(mrcy->Sign(&e, "2026-11-26T16:30:00Z").ok());
  EXPECT_EQ(trust->Verify(e).code, "sender_mismatch");
}

TEST_F(SecurityTest, WeakKeysAndWrongUsageAreRefusedOnBothSides) {
  // The signer refuses to load them ...
  auto weak = EventSigner::Load(Signing("weak-udms"), "UDMS");
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.status().message().find("1024 bits"), std::string::npos) << weak.status().message();
  EXPECT_NE(weak.status().message().find("weak-udms.key"), std::string::npos);
  auto p384 = EventSigner::Load(Signing("ec384-udms"), "UDMS");
  ASSERT_FALSE(p384.ok());
  EXPECT_NE(p384.status().message().find("P-256"), std::string::npos) << p384.status().message();
  auto encipher = EventSigner::Load(Signing("encipher-udms"), "UDMS");
  ASSERT_FALSE(encipher.ok());
  EXPECT_NE(encipher.status().message().find("digitalSignature"), std::string::npos);
}

TEST_F(SecurityTest, SignerChecksKeyCertificateAndIdentity) {
  SecurityConfig mixed = Signing("udms");
  mixed.certificate_file = Pki("mrcy.crt");
  auto s = EventSigner::Load(mixed, "UDMS");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("does not belong to the key"), std::string::npos) << s.status().message();

  auto other = EventSigner::Load(Signing("udms"), "BGAS");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not this gateway's participant_mpid BGAS"), std::string::npos) << other.status().message();

  // A key readable by others stops the start, naming the file and the mode.
  TempDir dir;
  std::string key = dir / "k.pem";
  gw::testing::WriteFile(key, gw::testing::ReadFileOrEmpty(Pki("udms.key")));
  ::chmod(key.c_str(), 0644);
  SecurityConfig open = Signing("udms");
  open.key_file = key;
  auto o = EventSigner::Load(open, "UDMS");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find(key), std::string::npos) << o.status().message();
  EXPECT_NE(o.status().message().find("0644"), std::string::npos) << o.status().message();
}

TEST_F(SecurityTest, PinnedCertificatesAndReferences) {
  TempDir pins;
  gw::testing::WriteFile(pins / "udms-self.pem", gw::testing::ReadFileOrEmpty(Pki("pinned-udms.crt")));
  auto trust = Trust("", pins.path());
  ASSERT_EQ(trust->pinned(), 1u);
  EXPECT_TRUE(trust->Verify(Signed("pinned-udms")).ok()) << trust->Verify(Signed("pinned-udms")).message;
  // Not carried, only referenced by fingerprint: found among the pinned ones.
  Event e = MakeEvent();
  auto ref = Signer("pinned-udms", "UDMS", /*embed=*/false);
  ASSERT_TRUE(ref->Sign(&e, "2026-11-26T16:30:00Z").ok());
  EXPECT_EQ(e.signature.find("\"certificate\""), std::string::npos);
  EXPECT_NE(e.signature.find("\"certSha256\""), std::string::npos);
  EXPECT_TRUE(trust->Verify(e).ok()) << trust->Verify(e).message;
  // CA-issued certificates are not trusted by a pin-only store.
  EXPECT_EQ(trust->Verify(Signed("udms")).code, "certificate_untrusted");
  // A reference to an unknown certificate.
  Event u = MakeEvent();
  ASSERT_TRUE(Signer("udms", "UDMS", false)->Sign(&u, "2026-11-26T16:30:00Z").ok());
  EXPECT_EQ(trust->Verify(u).code, "certificate_untrusted");
}

TEST_F(SecurityTest, OldSignaturesAreRefusedOnceDedupeHasForgottenThem) {
  SecurityConfig c;
  c.configured = true;
  c.trust_ca_file = Pki("ca.crt");
  c.max_signature_age_s = 28 * 86400;
  auto trust = TrustStore::Load(c);
  ASSERT_TRUE(trust.ok());
  auto signer = Signer("udms");
  auto at = [&](const std::string& date) {
    Event e = MakeEvent();
    EXPECT_TRUE(signer->Sign(&e, date).ok());
    return (*trust)->Verify(e);
  };
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  EXPECT_TRUE(at(IsoUtc(now - 27 * 86400)).ok());
  VerifyVerdict old = at(IsoUtc(now - 29 * 86400));
  EXPECT_EQ(old.code, "signature_stale");
  EXPECT_NE(old.message.find("older than 28 day(s)"), std::string::npos) << old.message;
  EXPECT_EQ(at(IsoUtc(now + 3600)).code, "signature_stale") << "from the future";
  EXPECT_EQ(at("yesterday").code, "signature_malformed");
}

TEST_F(SecurityTest, UntrustedAndOversizedCertificatesAreNotCached) {
  auto trust = Trust();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(trust->Verify(Signed("rogue-udms")).code, "certificate_untrusted");
  EXPECT_EQ(trust->cached(), 0u) << "a hostile publisher's certificates cost a check, not memory";
  Event big = Signed("udms");
  size_t p = big.signature.find("\"certificate\":\"") + 15;
  big.signature.insert(p, std::string(20000, 'A'));
  VerifyVerdict v = trust->Verify(big);
  EXPECT_EQ(v.code, "signature_malformed");
  EXPECT_NE(v.message.find("more than 16384"), std::string::npos) << v.message;
}

TEST_F(SecurityTest, ClaimedRolesMustBeTheSendersAndOurOwn) {
  auto policy = Policy::Parse("[participants]\nUDMS = D, SDS\nMRCY = X, SUP\n"
                              "[interface.IF-021]\nsenders = SDS, ADS\nreceivers = SUP\n", "policy.ini");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  Security sec;
  sec.participant_mpid = "MRCY";
  sec.participant_roles = {"X", "SUP"};
  sec.policy = std::make_unique<Policy>(std::move(policy.value()));
  Event e = MakeEvent("UDMS");
  std::string code;
  EXPECT_EQ(sec.CheckInbound(e, &code), "") << "UDMS holds SDS";
  e.sender.role = "ADS";  // entitled to send IF-021, but not a role UDMS holds
  std::string why = sec.CheckInbound(e, &code);
  EXPECT_EQ(code, "not_entitled");
  EXPECT_NE(why.find("UDMS does not hold role ADS"), std::string::npos) << why;
  Event stranger = MakeEvent("ZZZZ");
  why = sec.CheckInbound(stranger, &code);
  EXPECT_NE(why.find("ZZZZ is not listed in [participants]"), std::string::npos) << why;

  // Outbound: this participant sends only in its own roles.
  Security out;
  out.participant_mpid = "UDMS";
  out.participant_roles = {"D", "SDS"};
  auto p2 = Policy::Parse("[interface.IF-021]\nsenders = SDS, ADS\nreceivers = SUP\n", "policy.ini");
  out.policy = std::make_unique<Policy>(std::move(p2.value()));
  Event mine = MakeEvent("UDMS");
  EXPECT_EQ(out.CheckOutbound(mine), "");
  mine.sender.role = "ADS";
  EXPECT_NE(out.CheckOutbound(mine).find("role ADS is not this participant's (D, SDS)"), std::string::npos) << out.CheckOutbound(mine);
}

TEST_F(SecurityTest, JournalKeepsEachCertificateOnceAndGivesBackTheExactSignature) {
  TempDir dir;
  JournalOptions o;
  o.path = dir / "journal.db";
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  auto signer = Signer("udms");
  std::vector<Event> events;
  for (int i = 0; i < 30; ++i) {
    Event e = MakeEvent("UDMS", "cert-" + std::to_string(i));
    ASSERT_TRUE(signer->Sign(&e, "2026-11-26T16:30:00Z").ok());
    events.push_back(e);
  }
  ASSERT_TRUE((*j)->Append("inbox", events, {DeliveryTarget{"out", 0}}, "", nullptr).ok());
  ASSERT_TRUE((*j)->Flush().ok());
  std::vector<PendingDelivery> pending;
  ASSERT_TRUE((*j)->FetchPending("out", 100, &pending).ok());
  ASSERT_EQ(pending.size(), 30u);
  auto trust = Trust();
  for (size_t i = 0; i < pending.size(); ++i) {
    EXPECT_EQ(pending[i].event.signature, events[i].signature) << i;
    EXPECT_TRUE(trust->Verify(pending[i].event).ok());
  }
  // The certificate's text is in the journal once, not thirty times.
  const std::string cert = events[0].signature.substr(events[0].signature.find("\"certificate\":\"") + 15, 200);
  std::string bytes = gw::testing::ReadFileOrEmpty(dir / "journal.db") + gw::testing::ReadFileOrEmpty(dir / "journal.db-wal");
  size_t count = 0;
  for (size_t p = bytes.find(cert); p != std::string::npos; p = bytes.find(cert, p + 1)) ++count;
  EXPECT_GE(count, 1u);
  EXPECT_LE(count, 2u) << "once in the table (and perhaps once more in the WAL)";
  // Another process reading the journal restores it too.
  JournalOptions ro = o;
  ro.read_only = true;
  auto reader = Journal::Open(ro);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EventTrace t;
  ASSERT_TRUE((*reader)->Trace("cert-7", &t).ok());
  EXPECT_EQ(t.event.signature, events[7].signature);
}

TEST_F(SecurityTest, CertificatesAreCachedByContent) {
  auto trust = Trust();
  for (int i = 0; i < 20; ++i) {
    Event e = Signed("udms");
    e.id = "x";  // invalidates the signature, not the certificate
    trust->Verify(e);
  }
  EXPECT_EQ(trust->cached(), 1u);
}

TEST(PolicyTest, SendAndReceiveRulesWithReasons) {
  auto p = Policy::Parse("[policy]\ndefault = deny\n[interface.IF-021]\nsenders = SDS, ADS\nreceivers = SUP, LDSO\n", "policy.ini");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::string why;
  EXPECT_TRUE(p->MaySend("IF-021", "SDS", &why));
  EXPECT_FALSE(p->MaySend("IF-021", "SUP", &why));
  EXPECT_NE(why.find("role SUP may not send IF-021"), std::string::npos) << why;
  EXPECT_TRUE(p->MayReceive("IF-021", {"X", "SUP"}, &why));
  EXPECT_FALSE(p->MayReceive("IF-021", {"D", "SDS"}, &why));
  EXPECT_NE(why.find("may not receive IF-021"), std::string::npos) << why;
  EXPECT_FALSE(p->MaySend("IF-099", "SDS", &why)) << "default deny";
  EXPECT_NE(why.find("[interface.IF-099]"), std::string::npos) << why;
  auto allow = Policy::Parse("[policy]\ndefault = allow\n", "p.ini");
  ASSERT_TRUE(allow.ok());
  EXPECT_TRUE(allow->MaySend("IF-099", "SDS", &why));
}

TEST(PolicyTest, ParticipantsTableBindsRolesToMpids) {
  auto p = Policy::Parse("[participants]\nUDMS = D, SDS\n", "policy.ini");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::string why;
  EXPECT_TRUE(p->HoldsRole("UDMS", "SDS", &why));
  EXPECT_FALSE(p->HoldsRole("UDMS", "SUP", &why));
  EXPECT_FALSE(p->HoldsRole("MRCY", "SUP", &why));
  auto none = Policy::Parse("[policy]\ndefault = allow\n", "policy.ini");
  EXPECT_TRUE(none->HoldsRole("MRCY", "SUP", &why)) << "without the table, roles are as claimed";
  EXPECT_FALSE(Policy::Parse("[participants]\nUDMS =\n", "policy.ini").ok());
}

TEST(PolicyTest, ErrorsNameFileLineAndKey) {
  auto p = Policy::Parse("[interface.IF-021]\nsenders = SDS\nreceivers = SUP\nsendres = X\n", "policy.ini");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("policy.ini:4"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("sendres"), std::string::npos) << p.status().message();
  auto missing = Policy::Parse("[interface.IF-021]\nsenders = SDS\n", "policy.ini");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("receivers"), std::string::npos) << missing.status().message();
}

TEST(PolicyTest, ShippedPolicyFollowsTheInterfaceCatalogue) {
  auto p = Policy::Load(gw::testing::SourceDir() + "/config/policy.ini");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::string why;
  for (const char* r : {"SDS", "ADS", "UMSDS"}) EXPECT_TRUE(p->MaySend("IF-021", r, &why)) << r;
  for (const char* r : {"SUP", "LDSO", "MDS", "LSS"}) {
    EXPECT_FALSE(p->MaySend("IF-021", r, &why)) << r;
    EXPECT_TRUE(p->MayReceive("IF-021", {r}, &why)) << r;
  }
  EXPECT_FALSE(p->MayReceive("IF-021", {"SDS"}, &why));
}

TEST(PayloadCipherTest, SealsOpensAndRotates) {
  std::string k1(32, '\x01'), k2(32, '\x02');
  auto old_cipher = PayloadCipher::FromKeys({k1});
  ASSERT_TRUE(old_cipher.ok());
  std::string sealed = (*old_cipher)->Seal("secret payload", "event-1");
  EXPECT_TRUE(PayloadCipher::IsSealed(sealed));
  EXPECT_EQ(sealed.find("secret"), std::string::npos);
  EXPECT_NE((*old_cipher)->Seal("secret payload", "event-1"), sealed) << "a fresh nonce each time";
  auto opened = (*old_cipher)->Open(sealed, "event-1");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "secret payload");
  EXPECT_EQ((*old_cipher)->Open(sealed, "event-2").status().code(), StatusCode::kDataLoss) << "moved to another row";
  std::string flipped = sealed;
  flipped[flipped.size() - 20] ^= 1;
  EXPECT_EQ((*old_cipher)->Open(flipped, "event-1").status().code(), StatusCode::kDataLoss);

  // Rotation: the new key seals, the old one still opens older rows.
  auto rotated = PayloadCipher::FromKeys({k2, k1});
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(*(*rotated)->Open(sealed, "event-1"), "secret payload");
  std::string newer = (*rotated)->Seal("newer", "event-3");
  auto without_new = (*old_cipher)->Open(newer, "event-3");
  ASSERT_FALSE(without_new.ok());
  EXPECT_NE(without_new.status().message().find((*rotated)->current_key_id()), std::string::npos) << without_new.status().message();
}

// Each thread keeps a cipher context with its key set and a buffer of nonces: switching
// between keys, a failed open, refilling the buffer and another thread must not mix them up.
TEST(PayloadCipherTest, ThreadContextsFollowTheKeyInUse) {
  std::string k1(32, '\x01'), k2(32, '\x02');
  auto a = PayloadCipher::FromKeys({k1});
  auto b = PayloadCipher::FromKeys({k2});
  ASSERT_TRUE(a.ok() && b.ok());
  std::set<std::string> nonces;
  std::vector<std::string> all;
  for (int i = 0; i < 300; ++i) {
    const PayloadCipher& c = i % 3 == 0 ? **b : **a;
    std::string plain = "payload " + std::to_string(i);
    std::string sealed = c.Seal(plain, "event-" + std::to_string(i));
    all.push_back(sealed);
    nonces.insert(sealed.substr(8, 12));
    auto opened = c.Open(sealed, "event-" + std::to_string(i));
    ASSERT_TRUE(opened.ok()) << i << ": " << opened.status().ToString();
    EXPECT_EQ(*opened, plain);
    const PayloadCipher& other = i % 3 == 0 ? **a : **b;
    EXPECT_EQ(other.Open(sealed, "event-" + std::to_string(i)).status().code(), StatusCode::kDataLoss) << i;
    std::string flipped = sealed;
    flipped.back() ^= 1;
    EXPECT_FALSE(c.Open(flipped, "event-" + std::to_string(i)).ok()) << i;
  }
  EXPECT_EQ(nonces.size(), 300u) << "every payload gets its own nonce, across refills of the buffer";
  // Opened again on a thread whose contexts are fresh: a context keyed wrongly but used the
  // same way for sealing and opening above would show here.
  std::thread([&] {
    for (int i = 0; i < 300; ++i) {
      auto opened = (i % 3 == 0 ? *b : *a)->Open(all[i], "event-" + std::to_string(i));
      ASSERT_TRUE(opened.ok()) << i << ": " << opened.status().ToString();
      EXPECT_EQ(*opened, "payload " + std::to_string(i));
    }
  }).join();

  // The same key in a second cipher, and a payload sealed on one thread opened on another.
  auto again = PayloadCipher::FromKeys({k1});
  ASSERT_TRUE(again.ok());
  std::string sealed;
  std::thread([&] { sealed = (*again)->Seal("from another thread", "event-x"); }).join();
  auto opened = (*a)->Open(sealed, "event-x");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, "from another thread");
}

// A child process must not seal with the nonces its parent still holds in its buffer (the
// parent's next nonce would otherwise be the child's too: two payloads under one key and
// one nonce).
TEST(PayloadCipherTest, AForkedChildDrawsItsOwnNonces) {
  auto c = PayloadCipher::FromKeys({std::string(32, '\x03')});
  ASSERT_TRUE(c.ok());
  (*c)->Seal("fills this thread's buffer", "event-0");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string nonce = (*c)->Seal("child", "event-c").substr(8, 12);
    _exit(::write(fds[1], nonce.data(), nonce.size()) == 12 ? 0 : 1);
  }
  ::close(fds[1]);
  std::string theirs(12, '\0');
  ASSERT_EQ(::read(fds[0], theirs.data(), theirs.size()), 12);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string ours = (*c)->Seal("parent", "event-p").substr(8, 12);
  EXPECT_NE(ours, theirs);
}

TEST(PayloadCipherTest, KeyFilesAreCheckedAndParsed) {
  TempDir dir;
  const std::string hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  gw::testing::WriteFile(dir / "journal.key", hex + "\n");
  ::chmod((dir / "journal.key").c_str(), 0600);
  SecurityConfig c;
  c.configured = true;
  c.journal_key_file = dir / "journal.key";
  auto cipher = PayloadCipher::Load(c);
  ASSERT_TRUE(cipher.ok()) << cipher.status().ToString();
  ASSERT_TRUE(*cipher != nullptr);

  ::chmod((dir / "journal.key").c_str(), 0640);
  auto open = PayloadCipher::Load(c);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("journal.key"), std::string::npos) << open.status().message();

  gw::testing::WriteFile(dir / "short.key", "0011\n");
  ::chmod((dir / "short.key").c_str(), 0600);
  c.journal_key_file = dir / "short.key";
  auto bad = PayloadCipher::Load(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("64 hex digits"), std::string::npos) << bad.status().message();

  // From a systemd credential.
  c.journal_key_file.clear();
  c.journal_key_credential = "journal.key";
  ::chmod((dir / "journal.key").c_str(), 0400);
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  auto cred = PayloadCipher::Load(c);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  ASSERT_TRUE(cred.ok()) << cred.status().ToString();
  EXPECT_EQ((*cred)->current_key_id(), (*cipher)->current_key_id());
  auto no_dir = PayloadCipher::Load(c);
  ASSERT_FALSE(no_dir.ok());
  EXPECT_NE(no_dir.status().message().find("CREDENTIALS_DIRECTORY"), std::string::npos);
}

TEST(PayloadCipherTest, JournalFileHoldsNoPlaintextPayload) {
  TempDir dir;
  auto cipher = PayloadCipher::FromKeys({std::string(32, '\x07')});
  ASSERT_TRUE(cipher.ok());
  JournalOptions o;
  o.path = dir / "journal.db";
  o.cipher = *cipher;
  const std::string marker = "MARKER-1200023305967-PLAINTEXT";
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    std::vector<Event> events;
    for (int i = 0; i < 50; ++i) {
      Event e = MakeEvent("UDMS", "ev-" + std::to_string(i));
      e.payload = "{\"m\":\"" + marker + "\",\"i\":" + std::to_string(i) + "}";
      events.push_back(e);
    }
    ASSERT_TRUE((*j)->Append("inbox", events, {DeliveryTarget{"out", 0}}, "", nullptr).ok());
    ASSERT_TRUE((*j)->RecordRejections("inbox", {Rejection{"topic", "bad", "{\"raw\":\"" + marker + "\"}", true, "malformed"}}).ok());
    std::vector<PendingDelivery> pending;
    ASSERT_TRUE((*j)->FetchPending("out", 100, &pending).ok());
    ASSERT_EQ(pending.size(), 50u);
    EXPECT_EQ(pending[7].event.payload, "{\"m\":\"" + marker + "\",\"i\":7}") << "read back as it was";
    std::vector<QuarantinedMessage> q;
    ASSERT_TRUE((*j)->ListQuarantine(&q, true).ok());
    ASSERT_EQ(q.size(), 1u);
    EXPECT_NE(q[0].raw.find(marker), std::string::npos);
    ASSERT_TRUE((*j)->Flush().ok());
    // Neither the database nor its write-ahead log holds the text.
    for (const char* f : {"journal.db", "journal.db-wal"}) {
      std::string bytes = gw::testing::ReadFileOrEmpty(dir / f);
      EXPECT_EQ(bytes.find(marker), std::string::npos) << f;
      EXPECT_EQ(bytes.find("1200023305967"), std::string::npos) << f;
    }
  }
  // Without the key the rows cannot be read: each says why, and none blocks the others.
  JournalOptions plain;
  plain.path = o.path;
  auto j = Journal::Open(plain);
  ASSERT_TRUE(j.ok());
  std::vector<PendingDelivery> pending;
  ASSERT_TRUE((*j)->FetchPending("out", 10, &pending).ok());
  ASSERT_EQ(pending.size(), 10u);
  EXPECT_NE(pending[0].unreadable.find("journal_key_file"), std::string::npos) << pending[0].unreadable;
  // With another key, the error names the key the row needs.
  JournalOptions other = plain;
  other.cipher = *PayloadCipher::FromKeys({std::string(32, '\x08')});
  auto j2 = Journal::Open(other);
  ASSERT_TRUE(j2.ok());
  pending.clear();
  ASSERT_TRUE((*j2)->FetchPending("out", 10, &pending).ok());
  EXPECT_NE(pending[0].unreadable.find((*cipher)->current_key_id()), std::string::npos) << pending[0].unreadable;
}

}  // namespace
}  // namespace gw
