// The DIP's request signing with keys made by openssl: a signed request verifies, and each
// alteration is caught with its reason.
#include "gw/dip.h"

#include <gtest/gtest.h>

#include <ctime>

#include "tests/support/test_support.h"

namespace gw {
namespace {


class DipSigningTest : public ::testing::Test {
 protected:
  static std::unique_ptr<EventSigner> Signer(const std::string& name, const std::string& mpid = "UDMS") {
    SecurityConfig c;
    c.configured = true;
    c.key_file = gw::testing::SharedPki(name + ".key");
    c.certificate_file = gw::testing::SharedPki(name + ".crt");
    auto s = EventSigner::Load(c, mpid);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  static std::unique_ptr<TrustStore> Trust() {
    SecurityConfig c;
    c.configured = true;
    c.trust_ca_file = gw::testing::SharedPki("ca.crt");
    auto t = TrustStore::Load(c);
    EXPECT_TRUE(t.ok());
    return std::move(t.value());
  }
  static std::string Now() { return IsoUtc(static_cast<int64_t>(std::time(nullptr))); }
};

const char* kUrl = "https://127.0.0.1:8443/DIP-Channel/IF-021";
const char* kBody = R"([{"payload":{"CommonBlock":{},"CustomBlock":{}}}])";

TEST(DipStringTest, MethodUrlLowerCasedDateAndHash) {
  EXPECT_EQ(DipStringToSign("POST", "https://DIP.Example/dip-channel/IF-021", "2026-11-26T16:30:00Z", "abc="),
            "POST;https://dip.example/dip-channel/if-021;2026-11-26T16:30:00Z;abc=");
}

TEST_F(DipSigningTest, SignedRequestVerifies) {
  auto signer = Signer("udms");
  auto h = SignDipRequest(*signer, "POST", kUrl, kBody, Now());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->content_hash, Base64Encode(Sha256(kBody)));
  EXPECT_EQ(h->certificate, signer->certificate_base64());
  auto pem = Base64Decode(h->certificate);
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(pem->rfind("-----BEGIN CERTIFICATE-----", 0), 0u) << "base64 of the PEM, as the DIP sends it";
  VerifyVerdict v = VerifyDipRequest(*Trust(), "POST", kUrl, kBody, *h);
  EXPECT_TRUE(v.ok()) << v.code << ": " << v.message;
  // The URL is compared lower-cased, as it was signed.
  EXPECT_TRUE(VerifyDipRequest(*Trust(), "POST", "https://127.0.0.1:8443/dip-channel/if-021", kBody, *h).ok());
}

TEST_F(DipSigningTest, EachAlterationIsCaught) {
  auto signer = Signer("udms");
  auto trust = Trust();
  const DipSignatureHeaders good = *SignDipRequest(*signer, "POST", kUrl, kBody, Now());
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, std::string(kBody) + " ", good).code, "content_hash_mismatch");
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", "https://127.0.0.1:8443/dip-channel/if-022", kBody, good).code, "signature_invalid");
  DipSignatureHeaders h = good;
  h.date = IsoUtc(static_cast<int64_t>(std::time(nullptr)) - 10);
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, h).code, "signature_invalid") << "the date is signed";
  h = good;
  h.signature.clear();
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, h).code, "signature_missing");
  h = good;
  h.signature[5] = h.signature[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, h).code, "signature_invalid");
  // Signed an hour ago: a replay.
  auto old = SignDipRequest(*signer, "POST", kUrl, kBody, IsoUtc(static_cast<int64_t>(std::time(nullptr)) - 3600));
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, *old).code, "signature_stale");
  // Untrusted and expired signers.
  auto rogue = SignDipRequest(*Signer("rogue-udms"), "POST", kUrl, kBody, Now());
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, *rogue).code, "certificate_untrusted");
  auto expired = SignDipRequest(*Signer("expired-udms"), "POST", kUrl, kBody, Now());
  EXPECT_EQ(VerifyDipRequest(*trust, "POST", kUrl, kBody, *expired).code, "certificate_expired");
}

TEST_F(DipSigningTest, TheDipTakesRsaOnly) {
  auto ec = SignDipRequest(*Signer("ec-udms"), "POST", kUrl, kBody, Now());
  ASSERT_FALSE(ec.ok());
  EXPECT_NE(ec.status().message().find("RSA signatures only"), std::string::npos) << ec.status().message();
}

}  // namespace
}  // namespace gw
