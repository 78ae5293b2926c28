#include "gw/connectors/builtin.h"

#include "connectors/dip/dip_sink.h"
#include "connectors/dip/dip_source.h"
#include "connectors/file/file_sink.h"
#include "connectors/file/file_source.h"
#include "connectors/mqtt/mqtt_sink.h"
#include "connectors/mqtt/mqtt_source.h"
#include "connectors/sql/sql_connector.h"

namespace gw::connectors {

Status RegisterBuiltinConnectors(ConnectorRegistry& registry) {
  GW_RETURN_IF_ERROR(registry.RegisterSource("file", &file::FileSource::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSink("file", &file::FileSink::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSink("mqtt", &mqtt::MqttSink::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSource("mqtt", &mqtt::MqttSource::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSource("sql", &sql::SqlSource::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSink("sql", &sql::SqlSink::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSink("dip", &dip::DipSink::Create));
  GW_RETURN_IF_ERROR(registry.RegisterSource("dip", &dip::DipSource::Create));
  return Status::Ok();
}

}  // namespace gw::connectors
