#include "pcm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emo_rules.h"

#define MAX_HEADER_BYTES EMO_AUDIO_MAX_WAV_HEADER_BYTES /* chunks before "data": as pcm.py */

struct PcmInput {
  int fd;
  int32_t rate;
  int channels, width, is_float;
  unsigned char pending[64 * 4]; /* an incomplete frame (at most 64 channels x 4 bytes) */
  int pending_bytes;
  unsigned char *raw;
  int64_t raw_size;
};

static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Exactly `n` bytes unless the input ends: the bytes read. */
static int64_t read_exactly(int fd, unsigned char *out, int64_t n) {
  int64_t got = 0;
  while (got < n) {
    const ssize_t part = read(fd, out + got, (size_t)(n - got));
    if (part < 0 && errno == EINTR) continue;
    if (part <= 0) break;
    got += part;
  }
  return got;
}

static PcmInput *fail(PcmInput *input, char *message, int size, const char *text) {
  snprintf(message, (size_t)size, "%s", text);
  pcm_close(input);
  return NULL;
}

static int set_encoding(PcmInput *input, const char *encoding) {
  if (strcmp(encoding, "s16le") == 0) input->width = 2;
  else if (strcmp(encoding, "s24le") == 0) input->width = 3;
  else if (strcmp(encoding, "s32le") == 0) input->width = 4;
  else if (strcmp(encoding, "f32le") == 0) input->width = 4, input->is_float = 1;
  else return -1;
  return 0;
}

static PcmInput *read_header(PcmInput *input, char *message, int size) {
  unsigned char head[12], chunk[8];
  if (read_exactly(input->fd, head, 12) < 12 ||
      (memcmp(head, "RIFF", 4) != 0 && memcmp(head, "RF64", 4) != 0) ||
      memcmp(head + 8, "WAVE", 4) != 0)
    return fail(input, message, size, "not a WAV stream (no RIFF/WAVE header); for raw "
                "samples give --format s16le|s24le|s32le|f32le with --rate and --channels");
  int have_format = 0;
  int64_t seen = 12;
  for (;;) {
    if (read_exactly(input->fd, chunk, 8) < 8)
      return fail(input, message, size, "the WAV stream ended before its data chunk");
    const uint32_t length = u32(chunk + 4);
    if (memcmp(chunk, "data", 4) == 0) {
      if (!have_format)
        return fail(input, message, size, "the WAV stream has no fmt chunk before its data");
      return input;
    }
    seen += 8 + (int64_t)length;
    if (seen > MAX_HEADER_BYTES)
      return fail(input, message, size, "the WAV stream's header chunks exceed 1048576 bytes");
    const int64_t padded = (int64_t)length + (length % 2);
    unsigned char *body = malloc((size_t)padded + 1);
    if (!body) return fail(input, message, size, "out of memory");
    if (read_exactly(input->fd, body, padded) < (int64_t)length) {
      free(body);
      return fail(input, message, size, "the WAV stream ended inside a header chunk");
    }
    if (memcmp(chunk, "fmt ", 4) == 0) {
      if (length < 16) {
        free(body);
        return fail(input, message, size, "the WAV stream's fmt chunk is too short");
      }
      int tag = u16(body);
      const int channels = u16(body + 2), align = u16(body + 12), bits = u16(body + 14);
      if (tag == 0xFFFE && length >= 26) tag = u16(body + 24);
      input->rate = (int32_t)u32(body + 4);
      input->channels = channels;
      const char *encoding = tag == 1 && bits == 16 ? "s16le" : tag == 1 && bits == 24 ? "s24le"
                           : tag == 1 && bits == 32 ? "s32le" : tag == 3 && bits == 32 ? "f32le"
                           : NULL;
      free(body);
      if (!encoding)
        return fail(input, message, size, "this WAV sample format is not supported in a stream "
                    "(16/24/32-bit PCM and 32-bit float are)");
      if (channels < 1 || channels > 64 || align != channels * bits / 8)
        return fail(input, message, size, "the WAV stream's header contradicts itself "
                    "(channels, bits and block align)");
      set_encoding(input, encoding);
      have_format = 1;
    } else {
      free(body);
    }
  }
}

PcmInput *pcm_open(int fd, const char *encoding, int32_t rate, int channels, char *message,
                   int size) {
  PcmInput *input = calloc(1, sizeof *input);
  if (!input) return fail(NULL, message, size, "out of memory");
  input->fd = fd;
  if (strcmp(encoding, "wav") == 0) return read_header(input, message, size);
  if (set_encoding(input, encoding) != 0)
    return fail(input, message, size, "--format: use wav, s16le, s24le, s32le or f32le");
  if (channels < 1 || channels > 64)
    return fail(input, message, size, "--channels: 1 to 64 are supported");
  input->rate = rate;
  input->channels = channels;
  return input;
}

int32_t pcm_rate(const PcmInput *input) { return input->rate; }

int pcm_channels(const PcmInput *input) { return input->channels; }

/* One sample as a float with pcm.py's scaling. */
static float sample(const PcmInput *input, const unsigned char *p) {
  if (input->is_float) {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  switch (input->width) {
    case 2: return (float)(int16_t)u16(p) / 32768.0f;
    case 3: {
      const int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 |
                                  (uint32_t)p[2] << 24) >> 8;
      return (float)v / 8388608.0f;
    }
    default: return (float)(int32_t)u32(p) / 2147483648.0f;
  }
}

int64_t pcm_read(PcmInput *input, float *mono, int64_t frames, int wait, char *message,
                 int size) {
  const int frame_bytes = input->width * input->channels;
  const int64_t want = frames * frame_bytes;
  if (input->raw_size < want) {
    unsigned char *raw = realloc(input->raw, (size_t)want);
    if (!raw) {
      snprintf(message, (size_t)size, "out of memory");
      return -1;
    }
    input->raw = raw;
    input->raw_size = want;
  }
  memcpy(input->raw, input->pending, (size_t)input->pending_bytes);
  int64_t have = input->pending_bytes;
  for (;;) {
    if (!wait) {
      struct pollfd p = {input->fd, POLLIN, 0};
      if (poll(&p, 1, 0) == 0) {
        if (have < frame_bytes) return -2;
        break;
      }
    }
    const ssize_t got = read(input->fd, input->raw + have, (size_t)(want - have));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      snprintf(message, (size_t)size, "cannot read the input (%s)", strerror(errno));
      return -1;
    }
    if (got == 0) {  /* the end: whole frames first, then the partial one is an error */
      if (have >= frame_bytes) break;
      if (have == 0) return 0;
      snprintf(message, (size_t)size, "the input ended inside a frame (%d of %d bytes): a "
               "truncated stream, or the wrong --format or --channels",
               (int)(have % frame_bytes), frame_bytes);
      return -1;
    }
    have += got;
    if (have >= frame_bytes) break;
  }
  const int64_t count = have / frame_bytes;
  input->pending_bytes = (int)(have - count * frame_bytes);
  memcpy(input->pending, input->raw + count * frame_bytes, (size_t)input->pending_bytes);
  for (int64_t f = 0; f < count; ++f) {  /* the float32 mean of the channels */
    float sum = 0.0f;
    for (int c = 0; c < input->channels; ++c)
      sum += sample(input, input->raw + f * frame_bytes + c * input->width);
    mono[f] = sum / (float)input->channels;
  }
  return count;
}

void pcm_close(PcmInput *input) {
  if (!input) return;
  free(input->raw);
  free(input);
}
