// The segmenter of segment.h; names and rules follow toolkit/runtime/segments.py.
#include "segment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "emo_rules.h"

namespace emo {
namespace {

// rules.json's segmenter constants, Python's (toolkit/runtime/segments.py)
constexpr double kFrameS = EMO_SEGMENTS_FRAME_S;            // energy frame length
constexpr double kMinPauseS = EMO_SEGMENTS_MIN_PAUSE_S;     // shortest quiet run: a pause
constexpr double kPauseDb = EMO_SEGMENTS_PAUSE_DB;          // this far below speech: quiet
constexpr double kSilenceDbfs = EMO_SEGMENTS_SILENCE_DBFS;  // below this: quiet anyway

// NumPy's percentile (method "linear"), including its choice of formula either side of
// the midpoint, so the threshold matches to the last bit.
double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  const double t = position - static_cast<double>(below);
  const double a = values[below], b = values[above], diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

// Python's round() to a whole number for positive values (halves to even).
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

}  // namespace

Segmenter::Segmenter(int32_t sample_rate, int64_t window, int64_t min_samples)
    : window_(window), min_samples_(min_samples) {
  if (window < 4 * min_samples)
    throw std::invalid_argument("a window of " + std::to_string(window) + " samples is too "
                                "short for segments of at least " + std::to_string(min_samples));
  frame_ = std::max<int64_t>(1, round_half_even(kFrameS * sample_rate));
  min_pause_frames_ = std::max<int64_t>(1, round_half_even(kMinPauseS / kFrameS));
}

std::vector<Segment> Segmenter::push(const float* samples, int64_t count) {
  buffer_.insert(buffer_.end(), samples, samples + count);
  std::vector<Segment> done;
  size_t offset = 0;  // cut segments are dropped from the buffer once, after the loop
  while (static_cast<int64_t>(buffer_.size() - offset) > window_) {
    const int64_t cut = cut_point(buffer_.data() + offset, window_);
    Segment segment{start_, start_ + cut,
                    std::vector<float>(buffer_.begin() + static_cast<int64_t>(offset),
                                       buffer_.begin() + static_cast<int64_t>(offset) + cut)};
    for (auto& released : hold(std::move(segment))) done.push_back(std::move(released));
    offset += static_cast<size_t>(cut);
    start_ += cut;
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<int64_t>(offset));
  return done;
}

std::vector<Segment> Segmenter::finish() {
  Segment tail{start_, start_ + static_cast<int64_t>(buffer_.size()), std::move(buffer_)};
  buffer_.clear();
  std::optional<Segment> held = std::move(held_);
  held_.reset();
  const int64_t tail_length = tail.end - tail.start;
  std::vector<Segment> out;
  if (!held) {
    if (tail_length) out.push_back(std::move(tail));
    return out;
  }
  if (tail_length == 0 || tail_length >= min_samples_) {
    out.push_back(std::move(*held));
    if (tail_length) out.push_back(std::move(tail));
    return out;
  }
  std::vector<float> joined = std::move(held->samples);
  joined.insert(joined.end(), tail.samples.begin(), tail.samples.end());
  const int64_t size = static_cast<int64_t>(joined.size());
  if (size <= window_) {
    out.push_back(Segment{held->start, tail.end, std::move(joined)});
    return out;
  }
  const int64_t split = size - min_samples_;
  out.push_back(Segment{held->start, held->start + split,
                        std::vector<float>(joined.begin(), joined.begin() + split)});
  out.push_back(Segment{held->start + split, tail.end,
                        std::vector<float>(joined.begin() + split, joined.end())});
  return out;
}

std::vector<Segment> Segmenter::hold(Segment segment) {
  std::vector<Segment> released;
  if (held_) released.push_back(std::move(*held_));
  held_ = std::move(segment);
  return released;
}

int64_t Segmenter::cut_point(const float* window, int64_t count) const {
  const int64_t n = count / frame_;
  if (n == 0) return count;
  std::vector<double> level(static_cast<size_t>(n));
  for (int64_t f = 0; f < n; ++f) {
    double energy = 0.0;
    for (int64_t i = 0; i < frame_; ++i) {
      const double x = window[f * frame_ + i];
      energy += x * x;
    }
    level[static_cast<size_t>(f)] = 10.0 * std::log10(energy / static_cast<double>(frame_) +
                                                      1e-20);
  }
  const double speech = percentile(level, 95.0);
  const int64_t lo = n / 2;
  bool found = false;
  int64_t best_length = 0, best_middle = 0;
  for (int64_t f = 0; f < n;) {  // each run [first, last) of quiet frames
    const auto quiet = [&](int64_t k) {
      const double x = level[static_cast<size_t>(k)];
      return x < speech - kPauseDb || x < kSilenceDbfs;
    };
    if (!quiet(f)) {
      ++f;
      continue;
    }
    const int64_t first = f;
    while (f < n && quiet(f)) ++f;
    const int64_t last = f;
    if (last - first < min_pause_frames_ || last <= lo) continue;
    const int64_t a = std::max(first, lo);
    if (!found || last - a >= best_length) {
      found = true;
      best_length = last - a;
      best_middle = (a + last) / 2;
    }
  }
  if (!found) return count;
  return std::min(count, std::max(best_middle * frame_, min_samples_));
}

}  // namespace emo
