// DTN file -> gateway Events: wraps each decoded event group in an Event with a stable id.
//
// id = "{from MPID}-{file id}-{n}" where n is the event group's position in the file, so the
// same file always gives the same ids; correlation id = "{from MPID}-{file id}" ties a file's
// events together. The payload is the group's JSON (docs/formats.md).
// Thread-safety: pure functions.
#ifndef GW_ADAPTERS_DTN_EVENTS_H_
#define GW_ADAPTERS_DTN_EVENTS_H_

#include <string>
#include <vector>

#include "gw/adapters/dtn_decoder.h"
#include "mhhs/connector.h"
#include "mhhs/event.h"

namespace gw::adapters {

// Builds the Event for one unit. `origin` names the source and file ("inbox:FILE").
Event MakeDtnEvent(const DtnHeader& header, DtnUnit&& unit, const std::string& origin);

struct DtnEventOptions {
  // Map flows that have a DIP interface (D0036001 -> IF-021) instead of publishing them as
  // generic D-flow events. Needs `gateway` with [gateway] dip_id and [dip] role.
  bool dip_mapping = true;
  const GatewayInfo* gateway = nullptr;
  DtnDecodeHooks hooks;
};

// Decodes a whole file and hands each event to `on_event` as soon as its group is complete.
// Events handed over before an error turns up are not retracted: callers that need
// all-or-nothing either collect them or validate first (DtnDecoder::Decode without a callback).
DtnResult DecodeDtnEvents(const DtnDecoder& decoder, std::string_view content, const std::string& origin,
                          const DtnEventOptions& options, const std::function<void(Event&&)>& on_event);

// Decodes a whole file into `events` (all or nothing: on any error `events` is left empty).
DtnResult DecodeDtnToEvents(const DtnDecoder& decoder, std::string_view content, const std::string& origin,
                            const DtnEventOptions& options, std::vector<Event>* events);

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_DTN_EVENTS_H_
