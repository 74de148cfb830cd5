/* A WAV reader for the example app: PCM 8/16/24/32-bit, IEEE float 32/64-bit,
 * WAVE_FORMAT_EXTENSIBLE; any channel count, mixed down to mono floats in [-1, 1]. */
#ifndef EMO_EXAMPLES_WAV_H_
#define EMO_EXAMPLES_WAV_H_

#include <stdint.h>

typedef struct WavAudio {
  float *samples; /* mono; free with wav_free */
  int64_t count;
  int32_t sample_rate;
  int32_t channels;
} WavAudio;

/* Returns 0 on success; otherwise writes a message into `error` (size `error_size`). */
int wav_read(const char *path, WavAudio *out, char *error, int error_size);

void wav_free(WavAudio *audio);

#endif /* EMO_EXAMPLES_WAV_H_ */
