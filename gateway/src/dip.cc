#include "gw/dip.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>

namespace gw {

std::vector<std::pair<std::string, std::string>> DipHeaderFields(const DipSignatureHeaders& h) {
  return {{"X-DIP-Content-Hash", h.content_hash},
          {"X-DIP-Signature-Date", h.date},
          {"X-DIP-Signature", h.signature},
          {"X-DIP-Signature-Certificate", h.certificate}};
}

std::string DipStringToSign(const std::string& method, const std::string& url, const std::string& date,
                            const std::string& content_hash) {
  std::string lower = url;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return method + ";" + lower + ";" + date + ";" + content_hash;
}

StatusOr<DipSignatureHeaders> SignDipRequest(const EventSigner& signer, const std::string& method, const std::string& url,
                                             const std::string& body, const std::string& date) {
  if (signer.algorithm() != "RS256") {
    return FailedPrecondition("the DIP takes RSA signatures only; [security] key is " + signer.algorithm());
  }
  DipSignatureHeaders h;
  h.content_hash = Base64Encode(Sha256(body));
  h.date = date;
  auto sig = signer.SignBytes(DipStringToSign(method, url, date, h.content_hash));
  if (!sig.ok()) return sig.status();
  h.signature = Base64Encode(*sig);
  h.certificate = signer.certificate_base64();
  return h;
}

VerifyVerdict VerifyDipRequest(const TrustStore& trust, const std::string& method, const std::string& url,
                               const std::string& body, const DipSignatureHeaders& h, int64_t max_skew_s) {
  if (h.content_hash.empty() || h.date.empty() || h.signature.empty() || h.certificate.empty()) {
    return VerifyVerdict{"signature_missing", "the X-DIP-Content-Hash, X-DIP-Signature-Date, X-DIP-Signature and "
                                              "X-DIP-Signature-Certificate headers are all required"};
  }
  if (Base64Encode(Sha256(body)) != h.content_hash) {
    return VerifyVerdict{"content_hash_mismatch", "X-DIP-Content-Hash does not match the body"};
  }
  auto sig = Base64Decode(h.signature);
  if (!sig.ok()) return VerifyVerdict{"signature_malformed", "X-DIP-Signature: " + sig.status().message()};
  VerifyVerdict v = trust.VerifyDetached(h.certificate, "", DipStringToSign(method, url, h.date, h.content_hash), *sig,
                                         /*rsa=*/true, /*mpid=*/"");
  if (!v.ok()) return v;
  // The date is signed: a replay outside the window is refused.
  int64_t at = 0;
  if (!ParseIsoUtc(h.date, &at)) {
    return VerifyVerdict{"signature_malformed", "X-DIP-Signature-Date: \"" + h.date + "\" is not YYYY-MM-DDTHH:MM:SSZ"};
  }
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (std::llabs(now - at) > max_skew_s) {
    return VerifyVerdict{"signature_stale", "X-DIP-Signature-Date " + h.date + " is more than " + std::to_string(max_skew_s) +
                                                " s away from now"};
  }
  return VerifyVerdict();
}

}  // namespace gw
