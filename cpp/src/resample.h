// Band-limited sinc resampling (Hann-windowed), the Python runtime's resampler
// (toolkit/runtime/resample.py, equal to torchaudio's functional.resample with
// sinc_interp_hann) in C++: the same float32 tap table, so the outputs agree within
// float rounding, and the same streaming: push blocks, get every output whose taps have
// arrived, flush the rest. Memory: the table plus one block, whatever the rates.
#ifndef EMO_TOOLKIT_RESAMPLE_H_
#define EMO_TOOLKIT_RESAMPLE_H_

#include <cstdint>
#include <vector>

#include "emo_rules.h"

namespace emo {

// Samples that resampling `count` samples from `from_rate` to `to_rate` gives.
int64_t resampled_length(int64_t count, int32_t from_rate, int32_t to_rate);

class StreamResampler {
 public:
  StreamResampler(int32_t from_rate, int32_t to_rate,
                  int lowpass_width = EMO_RESAMPLE_LOWPASS_WIDTH,
                  double rolloff = EMO_RESAMPLE_ROLLOFF);
  // Appends to `out` the outputs the samples received so far complete.
  void push(const float* samples, int64_t count, std::vector<float>* out);
  // Appends the outputs left, the signal taken as zero after its end.
  void flush(std::vector<float>* out);

 private:
  void emit(int64_t end_period, std::vector<float>* out);

  int64_t orig_ = 1, new_ = 1;
  bool passthrough_ = true;
  int64_t taps_ = 0, lo_ = 0, hi_ = 0;
  std::vector<int64_t> first_;   // per phase: first input offset, relative to orig * k
  std::vector<float> weights_;   // per phase: taps_ weights
  int32_t from_rate_, to_rate_;
  int64_t received_ = 0, emitted_ = 0, period_ = 0;
  std::vector<float> buffer_;    // inputs from buffer_start_ on
  int64_t buffer_start_ = 0;
};

}  // namespace emo

#endif  // EMO_TOOLKIT_RESAMPLE_H_
