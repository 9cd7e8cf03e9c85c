// The tracker's live dashboard (src/tracker/dashboard.html), served at / on its HTTP port. The
// bytes are embedded at build time by tools/embed_file.py (see src/tracker/meson.build).
#pragma once
#include <string_view>

namespace mydfs::tracker {

extern const std::string_view kDashboardHtml;

}  // namespace mydfs::tracker
