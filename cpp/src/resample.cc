// The resampler of resample.h. Names follow toolkit/runtime/resample.py, whose comments
// explain the method; the tap table is computed in float32 in the same order of
// operations, so the weights round as Python's (and torchaudio's) do.
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace emo {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

}  // namespace

int64_t resampled_length(int64_t count, int32_t from_rate, int32_t to_rate) {
  if (from_rate == to_rate) return count;
  const int64_t g = std::gcd(from_rate, to_rate);
  return ceil_div(count * (to_rate / g), from_rate / g);
}

StreamResampler::StreamResampler(int32_t from_rate, int32_t to_rate, int lowpass_width,
                                 double rolloff)
    : from_rate_(from_rate), to_rate_(to_rate) {
  if (from_rate <= 0 || to_rate <= 0) throw std::invalid_argument("sample rates must be > 0");
  const int64_t g = std::gcd(from_rate, to_rate);
  orig_ = from_rate / g;
  new_ = to_rate / g;
  passthrough_ = from_rate == to_rate;
  if (passthrough_) return;
  const double base = static_cast<double>(std::min(orig_, new_)) * rolloff;
  const double reach = lowpass_width * static_cast<double>(orig_) / base;
  taps_ = 2 * static_cast<int64_t>(std::ceil(reach)) + 2;
  first_.resize(static_cast<size_t>(new_));
  weights_.resize(static_cast<size_t>(new_ * taps_));
  const float f_base = static_cast<float>(base), f_new = static_cast<float>(new_);
  const float f_orig = static_cast<float>(orig_), f_width = static_cast<float>(lowpass_width);
  const float f_pi = static_cast<float>(M_PI), scale = static_cast<float>(base / orig_);
  for (int64_t phase = 0; phase < new_; ++phase) {
    const int64_t first = static_cast<int64_t>(
        std::floor(static_cast<double>(phase) * orig_ / new_ - reach));
    first_[static_cast<size_t>(phase)] = first;
    const float offset = -static_cast<float>(phase) / f_new;
    for (int64_t tap = 0; tap < taps_; ++tap) {
      float t = offset + static_cast<float>(first + tap) / f_orig;
      t *= f_base;
      t = std::clamp(t, -f_width, f_width);
      const float c = std::cos(t * f_pi / f_width / 2.0f);
      const float window = c * c;
      t *= f_pi;
      const float sinc = t == 0.0f ? 1.0f : std::sin(t) / t;
      weights_[static_cast<size_t>(phase * taps_ + tap)] = sinc * (window * scale);
    }
  }
  lo_ = *std::min_element(first_.begin(), first_.end());
  hi_ = *std::max_element(first_.begin(), first_.end()) + taps_;
}

void StreamResampler::push(const float* samples, int64_t count, std::vector<float>* out) {
  received_ += count;
  if (passthrough_) {
    out->insert(out->end(), samples, samples + count);
    emitted_ += count;
    return;
  }
  buffer_.insert(buffer_.end(), samples, samples + count);
  const size_t before = out->size();
  emit(floor_div(received_ - hi_, orig_) + 1, out);  // period k needs input orig*k + hi - 1
  emitted_ += static_cast<int64_t>(out->size() - before);
}

void StreamResampler::flush(std::vector<float>* out) {
  if (passthrough_) return;
  const int64_t total = resampled_length(received_, from_rate_, to_rate_);
  std::vector<float> rest;
  emit(ceil_div(total, new_), &rest);
  rest.resize(static_cast<size_t>(std::clamp<int64_t>(total - emitted_, 0,
                                                      static_cast<int64_t>(rest.size()))));
  emitted_ += static_cast<int64_t>(rest.size());
  out->insert(out->end(), rest.begin(), rest.end());
}

void StreamResampler::emit(int64_t end_period, std::vector<float>* out) {
  if (end_period <= period_) return;
  const int64_t start_in = orig_ * period_ + lo_;
  const int64_t stop_in = orig_ * (end_period - 1) + hi_;
  std::vector<float> local(static_cast<size_t>(stop_in - start_in + orig_), 0.0f);
  const int64_t a = std::max(start_in, buffer_start_);
  const int64_t b = std::min(stop_in, buffer_start_ + static_cast<int64_t>(buffer_.size()));
  if (b > a)
    std::copy(buffer_.begin() + (a - buffer_start_), buffer_.begin() + (b - buffer_start_),
              local.begin() + (a - start_in));
  const int64_t count = new_ * (end_period - period_);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t phase = j % new_, k = j / new_;
    const float* x = local.data() + (first_[static_cast<size_t>(phase)] - lo_ + orig_ * k);
    const float* w = weights_.data() + phase * taps_;
    double sum = 0.0;
    for (int64_t tap = 0; tap < taps_; ++tap) sum += static_cast<double>(x[tap]) * w[tap];
    out->push_back(static_cast<float>(sum));
  }
  period_ = end_period;
  const int64_t keep_from = orig_ * period_ + lo_;
  if (keep_from > buffer_start_) {
    const int64_t drop = std::min<int64_t>(keep_from - buffer_start_,
                                           static_cast<int64_t>(buffer_.size()));
    buffer_.erase(buffer_.begin(), buffer_.begin() + drop);
    buffer_start_ = keep_from;
  }
}

}  // namespace emo
