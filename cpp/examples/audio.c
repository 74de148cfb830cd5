#include "audio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef EMO_WITH_SNDFILE
#include <sndfile.h>

const char *audio_reader(void) { return "libsndfile"; }

int audio_read(const char *path, WavAudio *out, char *error, int error_size) {
  memset(out, 0, sizeof *out);
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    snprintf(error, (size_t)error_size, "cannot open the file");
    return -1;
  }
  fclose(probe);
  SF_INFO info;
  memset(&info, 0, sizeof info);
  SNDFILE *file = sf_open(path, SFM_READ, &info);
  if (!file) {
    snprintf(error, (size_t)error_size, "not a readable audio file (%s)", sf_strerror(NULL));
    return -1;
  }
  if (info.frames <= 0 || info.channels <= 0) {
    sf_close(file);
    snprintf(error, (size_t)error_size, "no audio samples");
    return -1;
  }
  const size_t channels = (size_t)info.channels, block = 65536;
  float *mono = malloc((size_t)info.frames * sizeof(float));
  float *frames = malloc(block * channels * sizeof(float));
  int64_t total = 0;
  while (mono && frames && total < info.frames) {
    sf_count_t got = sf_readf_float(file, frames, (sf_count_t)block);
    if (got <= 0) break;
    for (sf_count_t i = 0; i < got && total < info.frames; ++i, ++total) {
      double sum = 0;  /* the mean of the channels, as the toolkit's mixdown */
      for (size_t c = 0; c < channels; ++c) sum += frames[(size_t)i * channels + c];
      mono[total] = (float)(sum / (double)channels);
    }
  }
  free(frames);
  sf_close(file);
  if (!mono) {
    snprintf(error, (size_t)error_size, "out of memory");
    return -1;
  }
  if (total < info.frames) {
    free(mono);
    snprintf(error, (size_t)error_size,
             "truncated or corrupt: the header declares %lld frames, %lld could be decoded",
             (long long)info.frames, (long long)total);
    return -1;
  }
  out->samples = mono;
  out->count = total;
  out->sample_rate = info.samplerate;
  out->channels = info.channels;
  return 0;
}

#else

const char *audio_reader(void) { return "wav"; }

int audio_read(const char *path, WavAudio *out, char *error, int error_size) {
  return wav_read(path, out, error, error_size);
}

#endif
