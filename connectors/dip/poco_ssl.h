// POCO's SSL layer, initialised once per process for the DIP connectors (and released at exit).
#ifndef GW_CONNECTORS_DIP_POCO_SSL_H_
#define GW_CONNECTORS_DIP_POCO_SSL_H_

#include <Poco/Net/SSLManager.h>

namespace gw::connectors::dip {

inline void EnsurePocoSsl() {
  static struct Init {
    Init() { Poco::Net::initializeSSL(); }
    ~Init() { Poco::Net::uninitializeSSL(); }
  } init;
}

}  // namespace gw::connectors::dip

#endif  // GW_CONNECTORS_DIP_POCO_SSL_H_
