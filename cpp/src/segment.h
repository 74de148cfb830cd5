// Cutting a long recording into segments the model can take, at pauses: the Python
// runtime's segmenter (toolkit/runtime/segments.py) in C++, with the same constants and
// cut rule, so both cut a recording at the same samples. Blocks in, segments out; at most
// two windows of audio are kept, so memory does not grow with the recording.
#ifndef EMO_TOOLKIT_SEGMENT_H_
#define EMO_TOOLKIT_SEGMENT_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace emo {

struct Segment {
  int64_t start = 0, end = 0;  // samples [start, end) of the recording
  std::vector<float> samples;
};

class Segmenter {
 public:
  // Throws std::invalid_argument when window < 4 * min_samples.
  Segmenter(int32_t sample_rate, int64_t window, int64_t min_samples);
  // The segments that the samples received so far complete.
  std::vector<Segment> push(const float* samples, int64_t count);
  // The last segments; none when the recording was empty.
  std::vector<Segment> finish();
  // Where to end a segment that starts at window[0]: in (count/2, count].
  int64_t cut_point(const float* window, int64_t count) const;

 private:
  std::vector<Segment> hold(Segment segment);

  int64_t window_, min_samples_, frame_, min_pause_frames_;
  std::vector<float> buffer_;
  int64_t start_ = 0;                // recording index of buffer_[0]
  std::optional<Segment> held_;      // the last cut segment, held for a short tail
};

}  // namespace emo

#endif  // EMO_TOOLKIT_SEGMENT_H_
