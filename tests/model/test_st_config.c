/* safetensors loader and model_config tests: valid single and sharded files
 * read back exactly; truncation at every byte and each header rule broken in
 * turn give an error naming the file; config.json / generation_config.json /
 * GGUF metadata map to the right hyper-parameters, and unknown architectures or
 * inconsistent values are rejected. */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k_ops.h"
#include "model_config.h"
#include "mtest.h"
#include "safetensors.h"

static char tmpdir[64];

static void make_tmpdir(void) {
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cvllm-test-st-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static char *tpath(const char *name) {
    make_tmpdir();
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(p, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Builds a safetensors image: header JSON padded to 8, then `data`. */
static buf_t st_image(const char *json, const void *data, size_t n) {
    buf_t b = {0};
    size_t hl = strlen(json), padded = (hl + 7) / 8 * 8;
    buf_u64(&b, padded);
    buf_put(&b, json, hl);
    while (b.n < 8 + padded) buf_u8(&b, ' ');
    buf_put(&b, data, n);
    return b;
}

/* a: F32 [2,3] = 0..5 (24 bytes), b: BF16 [4] = 1,-2,0.5,3 (8 bytes) */
static const char *VALID_JSON =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";

static void valid_data(unsigned char *d) {
    for (int i = 0; i < 6; i++) {
        float v = (float)i;
        memcpy(d + 4 * i, &v, 4);
    }
    const uint16_t bf[4] = {0x3F80, 0xC000, 0x3F00, 0x4040};
    memcpy(d + 24, bf, 8);
}

static int open_json(const char *json, const void *data, size_t n, char *err, size_t err_len) {
    buf_t b = st_image(json, data, n);
    char *p = tpath("x.safetensors");
    write_file(p, b.p, b.n);
    free(b.p);
    st_model_t *m = NULL;
    int rc = st_open(p, &m, err, err_len);
    if (!rc) st_close(&m);
    CHECK(m == NULL);
    return rc;
}

static void expect_st(const char *json, size_t ndata, int code, const char *needle) {
    unsigned char d[64];
    valid_data(d);
    char err[512] = "";
    int rc = open_json(json, d, ndata, err, sizeof err);
    if (rc != code || !strstr(err, needle) || !strstr(err, "x.safetensors")) {
        fprintf(stderr, "json %s: rc=%d (want %d) msg=\"%s\" (want \"%s\")\n", json, rc, code, err, needle);
        exit(1);
    }
}

static void test_st_valid(void) {
    unsigned char d[32];
    valid_data(d);
    buf_t b = st_image(VALID_JSON, d, 32);
    char *p = tpath("model.safetensors");
    write_file(p, b.p, b.n);
    char err[256] = "";
    st_model_t *m = NULL;
    int rc = st_open(p, &m, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_I(rc, 0);
    CHECK_EQ_I(st_tensor_count(m), 2);
    CHECK_EQ_I(st_file_count(m), 1);
    CHECK_STR(st_dir(m), tmpdir);
    CHECK_STR(st_metadata(m, "format"), "pt");
    CHECK(st_metadata(m, "nope") == NULL);
    const st_tensor_t *a = st_find_tensor(m, "a"), *bt = st_find_tensor(m, "b");
    CHECK(a && bt && !st_find_tensor(m, "c"));
    CHECK(a == st_tensor(m, 0)); /* sorted by name */
    CHECK_EQ_I(a->dtype, ST_DTYPE_F32);
    CHECK_EQ_I(a->n_dims, 2);
    CHECK(a->shape[0] == 2 && a->shape[1] == 3 && a->n_elements == 6 && a->nbytes == 24);
    float y[6];
    CHECK_EQ_I(k_dequant_row(st_dtype_k_type(a->dtype), a->data, y, 6), 0);
    for (int i = 0; i < 6; i++) CHECK_EQ_F(y[i], i);
    CHECK_EQ_I(k_dequant_row(st_dtype_k_type(bt->dtype), bt->data, y, 4), 0);
    CHECK(y[0] == 1 && y[1] == -2 && y[2] == 0.5f && y[3] == 3);
    CHECK_EQ_I(st_dtype_k_type(ST_DTYPE_I64), -1);
    st_close(&m);
    CHECK(m == NULL);
    /* the directory form finds model.safetensors */
    CHECK_EQ_I(st_open(tmpdir, &m, err, sizeof err), 0);
    CHECK_EQ_I(st_tensor_count(m), 2);
    st_close(&m);
    unlink(p);

    /* truncation at every byte */
    p = tpath("x.safetensors");
    for (size_t len = 0; len < b.n; len++) {
        write_file(p, b.p, len);
        err[0] = '\0';
        rc = st_open(p, &m, err, sizeof err);
        if (rc >= 0 || !strstr(err, "x.safetensors")) {
            fprintf(stderr, "truncated to %zu: rc=%d msg=\"%s\"\n", len, rc, err);
            exit(1);
        }
        CHECK(m == NULL);
    }
    /* one byte too many is a hole at the end */
    buf_u8(&b, 0);
    write_file(p, b.p, b.n);
    CHECK_ERR(st_open(p, &m, err, sizeof err), ENG_EFORMAT, err, "cover 32 bytes of a 33-byte buffer");
    free(b.p);
    unlink(p);
}

static void test_st_malformed(void) {
    expect_st("[1,2]", 32, ENG_EFORMAT, "does not start with '{'");
    expect_st("{\"a\":", 32, ENG_EFORMAT, "not valid JSON");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}} x", 24, ENG_EFORMAT, "trailing");
    expect_st("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ENG_ETYPE, "unsupported dtype \"Q4\"");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}", 24, ENG_EFORMAT, "needs 32");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}}", 24, ENG_EFORMAT, "shape[0]");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 24, ENG_EFORMAT, "shape[0]");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0.5,24]}}", 24, ENG_EFORMAT, "not non-negative integers");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[24,0]}}", 24, ENG_EFORMAT, "data_offsets");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[8,32]}}", 24, ENG_EFORMAT, "past the 24-byte buffer");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, ENG_EFORMAT, "hole");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              24, ENG_EFORMAT, "overlap");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,24]}}",
              24, ENG_EFORMAT, "duplicate tensor name 'a'");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],\"data_offsets\":[0,24]}}", 24, ENG_EFORMAT,
              "9 dimensions");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,24]}}", 24,
              ENG_EFORMAT, "overflow");
    expect_st("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 24,
              ENG_EFORMAT, "__metadata__ value 'k'");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[6]}}", 24, ENG_EFORMAT, "data_offsets");
    expect_st("{\"a\":[1]}", 24, ENG_EFORMAT, "not an object");
    /* header length fields */
    char err[256];
    st_model_t *m = NULL;
    unsigned char hdr[16] = {0};
    uint64_t huge = 200000000;
    memcpy(hdr, &huge, 8);
    write_file(tpath("x.safetensors"), hdr, 16);
    CHECK_ERR(st_open(tpath("x.safetensors"), &m, err, sizeof err), ENG_EFORMAT, err, "exceeds the limit");
    huge = 9;
    memcpy(hdr, &huge, 8);
    write_file(tpath("x.safetensors"), hdr, 16);
    CHECK_ERR(st_open(tpath("x.safetensors"), &m, err, sizeof err), ENG_EFORMAT, err, "truncated");
    CHECK_ERR(st_open(tpath("missing.safetensors"), &m, err, sizeof err), -ENOENT, err, "missing.safetensors");
    unlink(tpath("x.safetensors"));
}

static void test_st_sharded(void) {
    unsigned char d[32];
    valid_data(d);
    buf_t s1 = st_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", d, 24);
    buf_t s2 = st_image("{\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", d + 24, 8);
    write_file(tpath("m-1.safetensors"), s1.p, s1.n);
    write_file(tpath("m-2.safetensors"), s2.p, s2.n);
    const char *idx = "{\"metadata\":{\"total_size\":32},\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}";
    write_file(tpath("model.safetensors.index.json"), idx, strlen(idx));
    char err[512] = "";
    st_model_t *m = NULL;
    int rc = st_open(tmpdir, &m, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_I(rc, 0);
    CHECK_EQ_I(st_file_count(m), 2);
    CHECK_EQ_I(st_tensor_count(m), 2);
    const st_tensor_t *b = st_find_tensor(m, "b");
    CHECK(b && b->file == 1 && strstr(st_file_path(m, 1), "m-2.safetensors"));
    float y[4];
    CHECK_EQ_I(k_dequant_row(K_TYPE_BF16, b->data, y, 4), 0);
    CHECK_EQ_F(y[1], -2.0);
    st_close(&m);
    /* index path directly */
    CHECK_EQ_I(st_open(tpath("model.safetensors.index.json"), &m, err, sizeof err), 0);
    st_close(&m);

    const struct {
        const char *json, *needle;
        int code;
    } bad[] = {
        {"{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-1.safetensors\"}}", "absent from m-1.safetensors", ENG_EFORMAT},
        {"{\"weight_map\":{\"a\":\"m-2.safetensors\",\"b\":\"m-1.safetensors\"}}", "weight_map says", ENG_EFORMAT},
        {"{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-3.safetensors\"}}", "m-3.safetensors", -ENOENT},
        {"{\"weight_map\":{\"a\":\"../m-1.safetensors\"}}", "same directory", ENG_EFORMAT},
        {"{\"weight_map\":{}}", "weight_map", ENG_EFORMAT},
        {"{\"weight_map\":", "not valid JSON", ENG_EFORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(tpath("model.safetensors.index.json"), bad[i].json, strlen(bad[i].json));
        err[0] = '\0';
        rc = st_open(tmpdir, &m, err, sizeof err);
        if (rc != bad[i].code || !strstr(err, bad[i].needle)) {
            fprintf(stderr, "index %s: rc=%d msg=\"%s\" want \"%s\"\n", bad[i].json, rc, err, bad[i].needle);
            exit(1);
        }
        CHECK(m == NULL);
    }
    /* the same tensor in two shards */
    write_file(tpath("m-2.safetensors"), s1.p, s1.n);
    write_file(tpath("model.safetensors.index.json"), idx, strlen(idx));
    CHECK_ERR(st_open(tmpdir, &m, err, sizeof err), ENG_EFORMAT, err, "duplicate tensor name 'a'");
    unlink(tpath("m-1.safetensors"));
    unlink(tpath("m-2.safetensors"));
    unlink(tpath("model.safetensors.index.json"));
    CHECK_ERR(st_open(tmpdir, &m, err, sizeof err), -ENOENT, err, "neither");
    free(s1.p);
    free(s2.p);
    rmdir(tmpdir);
}

/* --- model_config ----------------------------------------------------------------- */

static const char *SMOL_CONFIG =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":576,"
    "\"intermediate_size\":1536,\"num_hidden_layers\":30,\"num_attention_heads\":9,\"num_key_value_heads\":3,"
    "\"rms_norm_eps\":1e-05,\"rope_theta\":100000,\"rope_scaling\":null,\"max_position_embeddings\":8192,"
    "\"vocab_size\":49152,\"tie_word_embeddings\":true,\"bos_token_id\":1,\"eos_token_id\":2,\"hidden_act\":\"silu\"}";

static int cfg(const char *json, mcfg_t *c, char *err, size_t n) {
    return mcfg_from_hf_json(json, strlen(json), "config.json", c, err, n);
}

static void test_config_hf(void) {
    mcfg_t c;
    char err[512] = "";
    int rc = cfg(SMOL_CONFIG, &c, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_I(rc, 0);
    CHECK_EQ_I(c.arch, MCFG_ARCH_LLAMA);
    CHECK(c.hidden_size == 576 && c.intermediate_size == 1536 && c.n_layers == 30);
    CHECK(c.n_heads == 9 && c.n_kv_heads == 3 && c.head_dim == 64 && c.vocab_size == 49152);
    CHECK(c.max_position_embeddings == 8192 && c.rms_norm_eps == 1e-5f && c.rope_theta == 100000.0f);
    CHECK(c.rope_scaling.type == MCFG_ROPE_SCALING_NONE && c.tie_word_embeddings && c.rope_neox);
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2 && !c.attention_bias);

    /* Llama 3.1 style: llama3 rope scaling, eos list, GQA 32/8 */
    const char *l31 =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4096,\"intermediate_size\":14336,"
        "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-05,"
        "\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
        "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},\"max_position_embeddings\":131072,"
        "\"vocab_size\":128256,\"eos_token_id\":[128001,128008,128009],\"bos_token_id\":128000}";
    CHECK_EQ_I(cfg(l31, &c, err, sizeof err), 0);
    CHECK(c.rope_scaling.type == MCFG_ROPE_SCALING_LLAMA3 && c.rope_scaling.factor == 8.0f);
    CHECK(c.rope_scaling.low_freq_factor == 1.0f && c.rope_scaling.high_freq_factor == 4.0f);
    CHECK(c.rope_scaling.original_max_position_embeddings == 8192 && c.rope_theta == 500000.0f);
    CHECK(c.n_eos == 3 && c.eos_token_ids[2] == 128009 && !c.tie_word_embeddings && c.head_dim == 128);

    /* Qwen2 with transformers v5 rope_parameters and explicit head_dim */
    const char *qw =
        "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":896,\"intermediate_size\":4864,"
        "\"num_hidden_layers\":24,\"num_attention_heads\":14,\"num_key_value_heads\":2,\"head_dim\":64,"
        "\"rms_norm_eps\":1e-06,\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
        "\"max_position_embeddings\":32768,\"vocab_size\":151936,\"tie_word_embeddings\":true,\"eos_token_id\":151645}";
    CHECK_EQ_I(cfg(qw, &c, err, sizeof err), 0);
    CHECK(c.arch == MCFG_ARCH_QWEN2 && c.attention_bias && c.rope_theta == 1000000.0f && c.head_dim == 64);
    CHECK(c.bos_token_id == -1 && c.n_kv_heads == 2);

    CHECK_ERR(cfg("{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":1}", &c, err, sizeof err), ENG_EARCH, err,
              "MistralForCausalLM");
    CHECK_ERR(cfg("{\"model_type\":\"gpt2\"}", &c, err, sizeof err), ENG_EARCH, err, "gpt2");
    CHECK_ERR(cfg("{}", &c, err, sizeof err), ENG_EARCH, err, "config.json");
    CHECK_ERR(cfg("{\"model_type\":\"llama\",\"hidden_size\":64}", &c, err, sizeof err), ENG_ECONFIG, err,
              "intermediate_size");
    CHECK_ERR(cfg("[", &c, err, sizeof err), ENG_ECONFIG, err, "JSON");
    /* inconsistent: 9 heads, 4 kv heads */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", SMOL_CONFIG);
    char *kv = strstr(buf, "\"num_key_value_heads\":3");
    kv[strlen("\"num_key_value_heads\":")] = '4';
    CHECK_ERR(cfg(buf, &c, err, sizeof err), ENG_ECONFIG, err, "not a multiple");
    snprintf(buf, sizeof buf, "%s", SMOL_CONFIG);
    memcpy(strstr(buf, "576"), "5.5", 3);
    CHECK_ERR(cfg(buf, &c, err, sizeof err), ENG_ECONFIG, err, "hidden_size");
    snprintf(buf, sizeof buf, "%s", SMOL_CONFIG);
    memcpy(strstr(buf, "null"), "\"xx\"", 4);
    CHECK_ERR(cfg(buf, &c, err, sizeof err), ENG_ECONFIG, err, "rope");
}

static void test_config_gen(void) {
    mcfg_gen_t g;
    mcfg_gen_defaults(&g);
    CHECK(g.temperature == 1.0f && g.top_p == 1.0f && g.top_k == 0 && !g.has_temperature);
    char err[256];
    const char *j = "{\"bos_token_id\":1,\"eos_token_id\":[2,0],\"pad_token_id\":2,\"do_sample\":true,"
                    "\"temperature\":0.2,\"top_p\":0.9,\"top_k\":40,\"repetition_penalty\":1.1,\"max_new_tokens\":256}";
    CHECK_EQ_I(mcfg_gen_from_json(j, strlen(j), NULL, &g, err, sizeof err), 0);
    CHECK(g.temperature == 0.2f && g.has_temperature && g.top_p == 0.9f && g.top_k == 40 && g.has_top_k);
    CHECK(g.repetition_penalty == 1.1f && g.max_new_tokens == 256 && g.do_sample && g.has_do_sample);
    CHECK(g.n_eos == 2 && g.eos_token_ids[1] == 0 && g.bos_token_id == 1 && g.pad_token_id == 2);
    CHECK(!g.has_min_p);
    mcfg_gen_t keep = g;
    j = "{\"top_p\":1.5}";
    CHECK_ERR(mcfg_gen_from_json(j, strlen(j), "gen.json", &g, err, sizeof err), ENG_ECONFIG, err, "gen.json");
    CHECK(!memcmp(&keep, &g, sizeof g)); /* untouched on error */
    j = "{\"top_k\":\"x\"}";
    CHECK_ERR(mcfg_gen_from_json(j, strlen(j), "gen.json", &g, err, sizeof err), ENG_ECONFIG, err, "top_k");
    CHECK_EQ_I(mcfg_gen_from_file("/nonexistent/generation_config.json", &g, err, sizeof err), -ENOENT);
}

static const mtest_case_t cases[] = {
    {"st-valid", test_st_valid},
    {"st-malformed", test_st_malformed},
    {"st-sharded", test_st_sharded},
    {"config-hf", test_config_hf},
    {"config-gen", test_config_gen},
};

int main(int argc, char **argv) {
    int rc = mtest_main(cases, sizeof cases / sizeof cases[0], argc, argv);
    if (tmpdir[0]) rmdir(tmpdir);
    return rc;
}
