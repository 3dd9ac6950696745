/* fe_oai_stop: incremental stop-string matching over detokenized output, the
 * way vLLM's detokenizer does it (check_stop_strings + get_next_output_text):
 * after each step, stop strings are tried in list order and the first one
 * that occurs ending inside the new text wins; the text is cut before it
 * (after it with include_stop_str_in_output). While the request runs, the
 * last (longest stop - 1) characters are held back so that a stop string
 * split across steps is never partly sent.
 *
 * Invariant: sent <= text.len, and sent never moves backwards (a match always
 * starts after the sent part, because the held-back window covers it).
 * Characters are code points; the input must be complete UTF-8 sequences
 * (the detokenizer holds back incomplete ones).
 */
/* memmem: _GNU_SOURCE comes from the project arguments */
#include <string.h>

#include "fe_oai.h"
#include "fe_oai_int.h"

int fe_oai_stop_init(fe_oai_stop_t *m, const char *const *stops, const size_t *stop_len, uint32_t n_stops,
                     int include_stop_str_in_output) {
    *m = (fe_oai_stop_t){.stops = stops,
                         .stop_len = stop_len,
                         .n_stops = n_stops,
                         .include = include_stop_str_in_output,
                         .matched = -1};
    /* vLLM: output_text_buffer_length = max(len(s)) - 1, only when the stop
     * string is cut from the output. */
    if (!m->include)
        for (uint32_t i = 0; i < n_stops; i++) {
            size_t c = fe_oai__utf8_chars(stops[i], stop_len[i]);
            if (c && c - 1 > m->hold) m->hold = c - 1;
        }
    return 0;
}

void fe_oai_stop_free(fe_oai_stop_t *m) { fe_oai_buf_free(&m->text); }

int fe_oai_stop_matched(const fe_oai_stop_t *m) { return m->matched; }

const char *fe_oai_stop_text(const fe_oai_stop_t *m, size_t *len) {
    *len = m->text.len;
    return m->text.data ? m->text.data : "";
}

/* Byte offset that leaves `chars` code points after it; 0 if the text is
 * shorter (then nothing may be sent yet). */
static size_t back_chars(const fe_oai_buf_t *t, size_t chars, int *short_text) {
    size_t pos = t->len;
    *short_text = 0;
    for (size_t k = 0; k < chars; k++) {
        if (pos == 0) {
            *short_text = 1;
            return 0;
        }
        pos--;
        while (pos > 0 && ((unsigned char)t->data[pos] & 0xC0) == 0x80) pos--;
    }
    return pos;
}

int fe_oai_stop_feed(fe_oai_stop_t *m, const char *s, size_t n, int check, int finished, const char **delta,
                     size_t *delta_len) {
    *delta = "";
    *delta_len = 0;
    if (m->finished) return 0;
    size_t old = m->text.len;
    if (fe_oai_buf_append(&m->text, s, n)) return FE_OAI_ENOMEM;
    int hit = 0;
    if (check && n) {
        for (uint32_t i = 0; i < m->n_stops && !hit; i++) {
            size_t sl = m->stop_len[i];
            /* Only matches that end inside the new text (the rest was searched
             * on earlier steps). */
            size_t from = old + 1 > sl ? old + 1 - sl : 0;
            const char *p = memmem(m->text.data + from, m->text.len - from, m->stops[i], sl);
            if (!p) continue;
            size_t at = (size_t)(p - m->text.data);
            size_t cut = m->include ? at + sl : at;
            if (cut < m->text.len) {
                m->text.len = cut;
                m->text.data[cut] = 0;
            }
            m->matched = (int)i;
            hit = 1;
        }
    }
    if (hit) finished = 1;
    int short_text = 0;
    size_t end = finished ? m->text.len : back_chars(&m->text, m->hold, &short_text);
    if (!short_text && end > m->sent) {
        *delta = m->text.data + m->sent;
        *delta_len = end - m->sent;
        m->sent = end;
    }
    m->finished = finished;
    return hit;
}
