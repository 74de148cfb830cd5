#include "wav.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct WavFile {
  FILE *f;
  int32_t rate;
  int channels, bits, is_float, frame_bytes;
  int64_t frames, left;
  unsigned char *raw;
  int64_t raw_frames;
};

static WavFile *fail(WavFile *wav, const char **reason, char *message, int size,
                     const char *code, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, (size_t)size, fmt, args);
  va_end(args);
  *reason = code;
  wav_close(wav);
  return NULL;
}

static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* One sample of `bits` at `p` as a float in [-1, 1] (libsndfile's scaling). */
static float decode(const unsigned char *p, int bits, int is_float) {
  if (is_float) {
    if (bits == 32) {
      float f;
      memcpy(&f, p, 4);
      return f;
    }
    double d;
    memcpy(&d, p, 8);
    return (float)d;
  }
  switch (bits) {
    case 8: return (float)(((int)p[0] - 128) / 128.0);
    case 16: return (float)((int16_t)u16(p) / 32768.0);
    case 24: {
      int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24);
      return (float)((v >> 8) / 8388608.0);
    }
    default: return (float)((int32_t)u32(p) / 2147483648.0);
  }
}

WavFile *wav_open(const char *path, const char **reason, char *message, int size) {
  WavFile *wav = calloc(1, sizeof *wav);
  if (!wav) return fail(NULL, reason, message, size, "failed", "out of memory");
  wav->f = fopen(path, "rb");
  if (!wav->f) return fail(wav, reason, message, size, "unreadable", "cannot read the file");
  unsigned char head[12], chunk[8], fmt[40];
  if (fread(head, 1, 12, wav->f) != 12 || memcmp(head, "RIFF", 4) != 0 ||
      memcmp(head + 8, "WAVE", 4) != 0)
    return fail(wav, reason, message, size, "corrupt", "not a readable audio file (not a "
                "RIFF/WAVE file; this build reads WAV only)");
  int have_fmt = 0;
  uint32_t fmt_size = 0;
  for (;;) {
    if (fread(chunk, 1, 8, wav->f) != 8)
      return fail(wav, reason, message, size, "corrupt",
                  have_fmt ? "not a readable audio file (no data chunk)"
                           : "not a readable audio file (no fmt chunk)");
    const uint32_t length = u32(chunk + 4);
    if (memcmp(chunk, "fmt ", 4) == 0) {
      fmt_size = length;
      const size_t take = length < sizeof fmt ? length : sizeof fmt;
      if (length < 16 || fread(fmt, 1, take, wav->f) != take ||
          fseek(wav->f, (long)(length - take + (length & 1)), SEEK_CUR) != 0)
        return fail(wav, reason, message, size, "corrupt", "not a readable audio file (bad "
                    "fmt chunk)");
      have_fmt = 1;
    } else if (memcmp(chunk, "data", 4) == 0) {
      if (!have_fmt)
        return fail(wav, reason, message, size, "corrupt", "not a readable audio file (data "
                    "before the fmt chunk)");
      int format = u16(fmt);
      wav->channels = u16(fmt + 2);
      wav->rate = (int32_t)u32(fmt + 4);
      wav->bits = u16(fmt + 14);
      if (format == 0xFFFE && fmt_size >= 26) format = u16(fmt + 24); /* extensible */
      wav->is_float = format == 3;
      const int ok_bits = wav->is_float ? (wav->bits == 32 || wav->bits == 64)
                                        : (wav->bits == 8 || wav->bits == 16 ||
                                           wav->bits == 24 || wav->bits == 32);
      if ((format != 1 && format != 3) || !ok_bits || wav->channels < 1)
        return fail(wav, reason, message, size, "corrupt", "not a readable audio file "
                    "(unsupported WAV encoding: format %d, %d bits, %d channels)", format,
                    wav->bits, wav->channels);
      wav->frame_bytes = wav->channels * wav->bits / 8;
      wav->frames = wav->left = length / (uint32_t)wav->frame_bytes;
      return wav;
    } else if (fseek(wav->f, (long)length + (long)(length & 1), SEEK_CUR) != 0) {
      return fail(wav, reason, message, size, "corrupt", "not a readable audio file");
    }
  }
}

int32_t wav_sample_rate(const WavFile *wav) { return wav->rate; }
int wav_channels(const WavFile *wav) { return wav->channels; }
int64_t wav_frames(const WavFile *wav) { return wav->frames; }

int64_t wav_read_frames(WavFile *wav, float *out, int64_t frames) {
  if (frames > wav->left) frames = wav->left;
  if (frames <= 0) return 0;
  if (frames > wav->raw_frames) {
    unsigned char *grown = realloc(wav->raw, (size_t)(frames * wav->frame_bytes));
    if (!grown) return -1;
    wav->raw = grown;
    wav->raw_frames = frames;
  }
  const size_t got = fread(wav->raw, (size_t)wav->frame_bytes, (size_t)frames, wav->f);
  if (got == 0 && ferror(wav->f)) return -1;
  wav->left = got < (size_t)frames ? 0 : wav->left - (int64_t)got;  /* a short file ends */
  const int bytes = wav->bits / 8;
  for (size_t i = 0; i < got * (size_t)wav->channels; ++i)
    out[i] = decode(wav->raw + i * (size_t)bytes, wav->bits, wav->is_float);
  return (int64_t)got;
}

void wav_close(WavFile *wav) {
  if (!wav) return;
  if (wav->f) fclose(wav->f);
  free(wav->raw);
  free(wav);
}
