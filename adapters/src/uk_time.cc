#include "gw/adapters/uk_time.h"

#include <cstdio>

namespace gw::adapters {
namespace {

// 01:00 UTC on the last Sunday of `month` (3 or 10) of year `y`, in seconds.
int64_t LastSundayOneUtc(int y, int month) {
  int64_t last = DaysFromCivil(y, month, 31);
  // 1970-01-01 was a Thursday; weekday 0 = Sunday.
  int64_t wd = ((last % 7) + 7 + 4) % 7;
  return (last - wd) * 86400 + 3600;
}

}  // namespace

int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int* y, int* m, int* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = static_cast<int>(yy + (*m <= 2));
}

bool IsValidDate(int y, int m, int d) {
  if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  int max = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
  return d <= max;
}

bool IsBst(int64_t utc_s) {
  int y, m, d;
  CivilFromDays(utc_s >= 0 ? utc_s / 86400 : (utc_s - 86399) / 86400, &y, &m, &d);
  return utc_s >= LastSundayOneUtc(y, 3) && utc_s < LastSundayOneUtc(y, 10);
}

int64_t UkMidnightUtc(int y, int m, int d) {
  int64_t local_midnight_as_utc = DaysFromCivil(y, m, d) * 86400;
  // Local midnight is never within a transition hour (they happen at 01:00 UTC), so the offset
  // in force one hour before equals the offset at midnight.
  return IsBst(local_midnight_as_utc - 3600) ? local_midnight_as_utc - 3600 : local_midnight_as_utc;
}

int SettlementPeriods(int y, int m, int d) {
  int64_t days = DaysFromCivil(y, m, d);
  int ny, nm, nd;
  CivilFromDays(days + 1, &ny, &nm, &nd);
  int64_t len = UkMidnightUtc(ny, nm, nd) - UkMidnightUtc(y, m, d);
  return static_cast<int>(len / 1800);
}

std::string FormatUtcOffset(int64_t utc_s) {
  int64_t days = utc_s >= 0 ? utc_s / 86400 : (utc_s - 86399) / 86400;
  int64_t secs = utc_s - days * 86400;
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", y, m, d,
                static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return buf;
}

std::string UkLocalToIsoOffset(int y, int mo, int d, int h, int mi, int s) {
  int64_t as_utc = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  // Try BST first (local - 1h); it is right when that instant is in BST.
  bool bst = IsBst(as_utc - 3600);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d+%02d:00", y, mo, d, h, mi, s, bst ? 1 : 0);
  return buf;
}

}  // namespace gw::adapters
