#include "audio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wav.h"

static void set(AudioError *error, const char *reason, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  error->reason = reason;
  vsnprintf(error->message, sizeof error->message, fmt, args);
  va_end(args);
}

/* The Python runtime's file rule (toolkit/runtime/audio.py _check_file). */
static int check_file(const char *path, AudioError *error) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) set(error, "unreadable", "file not found");
    else set(error, "unreadable", "cannot access the file (%s)", strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    set(error, "unreadable", "not a regular file");
    return -1;
  }
  if (st.st_size == 0) {
    set(error, "empty-file", "the file is empty (0 bytes)");
    return -1;
  }
  return 0;
}

/* Mixes `frames` interleaved frames of `channels` into mono as NumPy's float32 mean does:
 * the float32 sum of the channels, divided by their count. */
static void mix(const float *interleaved, int64_t frames, int channels, float *mono) {
  for (int64_t i = 0; i < frames; ++i) {
    if (channels == 1) {
      mono[i] = interleaved[i];
      continue;
    }
    float sum = 0.0f;
    for (int c = 0; c < channels; ++c) sum += interleaved[i * channels + c];
    mono[i] = sum / (float)channels;
  }
}

struct AudioFile {
  int32_t sample_rate;
  int channels;
  int64_t declared, decoded;
  float *interleaved;  /* one block */
  int64_t capacity;    /* frames the block holds */
#ifdef EMO_WITH_SNDFILE
  void *sndfile;
#else
  WavFile *wav;
#endif
};

int32_t audio_sample_rate(const AudioFile *file) { return file->sample_rate; }

static float *block_for(AudioFile *file, int64_t frames) {
  if (frames > file->capacity) {
    float *grown = realloc(file->interleaved, (size_t)(frames * file->channels) * sizeof(float));
    if (!grown) return NULL;
    file->interleaved = grown;
    file->capacity = frames;
  }
  return file->interleaved;
}

/* After the last block: fewer frames than declared, or none. */
static int64_t at_end(AudioFile *file, AudioError *error) {
  if (file->decoded < file->declared) {
    set(error, "truncated", "header declares %lld frames but only %lld could be decoded",
        (long long)file->declared, (long long)file->decoded);
    return -1;
  }
  if (file->decoded == 0) {
    set(error, "zero-length", "the file holds a header but no audio samples");
    return -1;
  }
  return 0;
}

/* Each reader opens the file into `file` (rate, channels, declared frames) and reads
 * interleaved frames: the frames read, 0 at the end, -1 with *error. */
#ifdef EMO_WITH_SNDFILE
#include <sndfile.h>

const char *audio_reader(void) { return "libsndfile"; }

static int open_reader(const char *path, AudioFile *file, AudioError *error) {
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    set(error, "unreadable", "cannot read the file (%s)", strerror(errno));
    return -1;
  }
  fclose(probe);
  SF_INFO info;
  memset(&info, 0, sizeof info);
  file->sndfile = sf_open(path, SFM_READ, &info);
  if (!file->sndfile) {
    set(error, "corrupt", "not a readable audio file (%s)", sf_strerror(NULL));
    return -1;
  }
  if (info.channels < 1) {
    set(error, "corrupt", "not a readable audio file (no channels)");
    return -1;
  }
  file->sample_rate = info.samplerate;
  file->channels = info.channels;
  file->declared = info.frames;
  return 0;
}

static int64_t read_frames(AudioFile *file, float *block, int64_t frames, AudioError *error) {
  sf_count_t got = sf_readf_float(file->sndfile, block, frames);
  if (got < 0 || sf_error(file->sndfile) != SF_ERR_NO_ERROR) {
    set(error, "corrupt", "the header is valid but decoding failed partway; the file is "
        "truncated or corrupt (%s)", sf_strerror(file->sndfile));
    return -1;
  }
  return got;
}

static void close_reader(AudioFile *file) {
  if (file->sndfile) sf_close(file->sndfile);
}

#else

const char *audio_reader(void) { return "wav"; }

static int open_reader(const char *path, AudioFile *file, AudioError *error) {
  file->wav = wav_open(path, &error->reason, error->message, sizeof error->message);
  if (!file->wav) return -1;
  file->sample_rate = wav_sample_rate(file->wav);
  file->channels = wav_channels(file->wav);
  file->declared = wav_frames(file->wav);
  return 0;
}

static int64_t read_frames(AudioFile *file, float *block, int64_t frames, AudioError *error) {
  int64_t got = wav_read_frames(file->wav, block, frames);
  if (got < 0) set(error, "unreadable", "cannot read the file (%s)", strerror(errno));
  return got;
}

static void close_reader(AudioFile *file) { wav_close(file->wav); }

#endif

AudioFile *audio_open(const char *path, AudioError *error) {
  if (check_file(path, error) != 0) return NULL;
  AudioFile *file = calloc(1, sizeof *file);
  if (!file) {
    set(error, "failed", "out of memory");
    return NULL;
  }
  if (open_reader(path, file, error) != 0) {
    audio_close(file);
    return NULL;
  }
  return file;
}

int64_t audio_read(AudioFile *file, float *mono, int64_t frames, AudioError *error) {
  float *block = block_for(file, frames);
  if (!block) {
    set(error, "failed", "out of memory");
    return -1;
  }
  const int64_t got = read_frames(file, block, frames, error);
  if (got <= 0) return got < 0 ? -1 : at_end(file, error);
  mix(block, got, file->channels, mono);
  file->decoded += got;
  return got;
}

void audio_close(AudioFile *file) {
  if (!file) return;
  close_reader(file);
  free(file->interleaved);
  free(file);
}
