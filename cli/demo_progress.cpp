#include "demo_progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <utility>

#include <fmt/format.h>

namespace tracewatch::cli {
namespace {

// The terminal's width in columns, or 80 when it cannot be read.
std::size_t terminal_width(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

void demo_tally::on_abandoned(const std::string& id) {
  abandoned.push_back(id);
  // A worker that stalled past the threshold may have been reaped already.
  if (!reaped.contains(id)) awaiting_reap.insert(id);
}

void demo_tally::on_reaped(const std::string& id) {
  reaped.insert(id);
  awaiting_reap.erase(id);
}

std::string_view to_string(demo_phase phase) noexcept {
  switch (phase) {
    case demo_phase::starting: return "starting";
    case demo_phase::ingress: return "ingress";
    case demo_phase::drain: return "drain";
    case demo_phase::stopping: return "stopping";
    case demo_phase::done: return "done";
  }
  return "unknown";
}

std::string format_status(std::chrono::duration<double> elapsed, demo_phase phase,
                          const demo_tally& tally, std::string_view leader, std::size_t max_width) {
  // The parts in display order, each with its rank: when the line is too
  // long, the parts of the highest rank go first.
  const std::pair<int, std::string> parts[] = {
      {0, fmt::format("{:5.1f}s {:<8}", elapsed.count(), to_string(phase))},
      {1, fmt::format("created {}", tally.created)},
      {3, fmt::format("in flight {}", tally.in_flight())},
      {0, fmt::format("completed {}", tally.completed.size())},
      {0, fmt::format("abandoned {}", tally.abandoned.size())},
      {0, fmt::format("reaped {}", tally.reaped.size())},
      {2, fmt::format("sweeps {}", tally.sweeps)},
      {4, fmt::format("(last {:.1f} ms)", tally.last_sweep.count())},
      {0, fmt::format("leader {}", leader)},
  };

  std::string line;
  for (int max_rank = 4; max_rank >= 0; --max_rank) {
    line.clear();
    for (const auto& [rank, text] : parts) {
      if (rank > max_rank) continue;
      // The phase is padded to 8 characters already.
      if (!line.empty()) line += line.size() == parts[0].second.size() ? " " : "  ";
      if (text.starts_with('(')) line.pop_back();
      line += text;
    }
    if (line.size() <= max_width) return line;
  }
  // The line is ASCII, so bytes are columns.
  line.resize(max_width);
  return line;
}

progress_display::progress_display(std::FILE* out)
    : out_(out), terminal_(::isatty(::fileno(out)) == 1) {}

std::chrono::milliseconds progress_display::interval() const noexcept {
  if (terminal_) return kTerminalInterval;
  return kPlainInterval;
}

std::size_t progress_display::max_width() const {
  if (!terminal_) return std::string::npos;
  // Writing the last column makes some terminals wrap at once, and the
  // terminal echoes a Ctrl-C as "^C" after the line: keep three columns free.
  const std::size_t width = terminal_width(out_);
  return width > 3 ? width - 3 : 1;
}

void progress_display::show(const std::string& line) {
  if (!terminal_) {
    fmt::print(out_, "{}\n", line);
    std::fflush(out_);
    return;
  }
  // "\r" returns to column 0 and "\x1b[K" erases what an older, longer
  // line left to the right.
  fmt::print(out_, "\r{}\x1b[K", line);
  std::fflush(out_);
  drawn_ = true;
}

void progress_display::clear() {
  if (!terminal_ || !drawn_) return;
  fmt::print(out_, "\r\x1b[K");
  std::fflush(out_);
  drawn_ = false;
}

void progress_display::finish() {
  if (!terminal_ || !drawn_) return;
  fmt::print(out_, "\n");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace tracewatch::cli
