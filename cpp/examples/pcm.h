/* Audio arriving on a pipe for `emo_classify --stream`: a WAV stream (its header first; the
 * data size is not trusted, recorders write 0 or 0xFFFFFFFF) or raw little-endian samples,
 * read as they come and mixed to mono floats as the Python runtime mixes them. The same
 * formats and scaling as toolkit/runtime/pcm.py. */
#ifndef EMO_EXAMPLES_PCM_H_
#define EMO_EXAMPLES_PCM_H_

#include <stdint.h>

typedef struct PcmInput PcmInput;

/* Reads from `fd`: `encoding` "wav" reads the header (then `rate` and `channels` are the
 * header's); "s16le", "s24le", "s32le" or "f32le" take `rate` and `channels`. NULL and
 * `message` on failure. */
PcmInput *pcm_open(int fd, const char *encoding, int32_t rate, int channels, char *message,
                   int size);
int32_t pcm_rate(const PcmInput *input);
int pcm_channels(const PcmInput *input);

/* Up to `frames` mono frames into `mono`: waits for input when `wait`, else returns -2 when
 * none has arrived. 0 at the end of input; -1 and `message` on a read error or when the
 * input ends inside a frame. */
int64_t pcm_read(PcmInput *input, float *mono, int64_t frames, int wait, char *message,
                 int size);

void pcm_close(PcmInput *input);

#endif /* EMO_EXAMPLES_PCM_H_ */
