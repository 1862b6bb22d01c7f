/*
 * kedit_sample - edits a fact through the C API, then rolls it back:
 *   kedit_sample MODEL_DIR METHOD HPARAMS STATS|- REQUESTS_JSON PROMPT CANDIDATE [MAX_NEW_TOKENS]
 * Generates for PROMPT and scores CANDIDATE after it before the edit, after it and after rolling it back,
 * and fails unless the rollback restores the generation byte for byte and the score bit for bit.
 * Exits 0 on success, 1 on any failure (printing kedit_last_error()), 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kedit.h"

#define CHECK(call)                                                                              \
    do {                                                                                         \
        kedit_status status_ = (call);                                                           \
        if (status_ != KEDIT_OK) {                                                               \
            fprintf(stderr, "%s failed (status %d): %s\n", #call, (int)status_, kedit_last_error()); \
            goto done;                                                                           \
        }                                                                                        \
    } while (0)

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)) != NULL) {
            size_t got = fread(text, 1, (size_t)size, f);
            text[got] = '\0';
        }
    }
    fclose(f);
    return text;
}

/* Output of a call with a caller-owned buffer: first into a small buffer, then retried with the size
 * it reported. The retry re-runs the call; a caller that knows the usual size starts big enough. */
static kedit_status generate(kedit_editor *editor, const char *prompt, int max_new_tokens, char **text)
{
    char small[8];
    size_t needed = 0;
    *text = NULL;
    kedit_status s = kedit_generate(editor, prompt, max_new_tokens, small, sizeof small, &needed);
    if (s == KEDIT_OK) return (*text = strdup(small)) ? KEDIT_OK : KEDIT_INTERNAL_ERROR;
    if (s != KEDIT_BUFFER_TOO_SMALL) return s;
    printf("retry: %zu-byte buffer too small, %zu needed\n", sizeof small, needed);
    if (!(*text = malloc(needed))) return KEDIT_INTERNAL_ERROR;
    return kedit_generate(editor, prompt, max_new_tokens, *text, needed, &needed);
}

static kedit_status list_edits(kedit_editor *editor, char **json)
{
    size_t needed = 0;
    *json = NULL;
    kedit_status s = kedit_list_edits(editor, NULL, 0, &needed); /* size query */
    if (s != KEDIT_BUFFER_TOO_SMALL) return s;
    if (!(*json = malloc(needed))) return KEDIT_INTERNAL_ERROR;
    return kedit_list_edits(editor, *json, needed, &needed);
}

/* One line per value, with newlines and quotes escaped. */
static void print_text(const char *label, const char *text)
{
    printf("%s: \"", label);
    for (const char *c = text; *c; c++) {
        if (*c == '\n') fputs("\\n", stdout);
        else if (*c == '"' || *c == '\\') printf("\\%c", *c);
        else putchar(*c);
    }
    printf("\"\n");
}

int main(int argc, char **argv)
{
    if (argc < 8 || argc > 9) {
        fprintf(stderr, "usage: %s MODEL_DIR METHOD HPARAMS STATS|- REQUESTS_JSON PROMPT CANDIDATE [MAX_NEW_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[1], *method = argv[2], *hparams = argv[3], *prompt = argv[6], *candidate = argv[7];
    const char *stats = strcmp(argv[4], "-") == 0 ? NULL : argv[4];
    int max_new_tokens = argc == 9 ? atoi(argv[8]) : 8;
    int ok = 0;
    kedit_editor *editor = NULL;
    char *requests = NULL, *before = NULL, *after = NULL, *restored = NULL, *edits = NULL;
    char edit_id[KEDIT_EDIT_ID_CAPACITY];
    size_t needed;
    double score_before, score_after, score_restored;

    if (!(requests = read_file(argv[5]))) {
        fprintf(stderr, "%s: cannot read the requests file\n", argv[5]);
        return 1;
    }
    CHECK(kedit_open(model_dir, method, hparams, stats, &editor));

    CHECK(generate(editor, prompt, max_new_tokens, &before));
    CHECK(kedit_score(editor, prompt, candidate, &score_before));
    print_text("before", before);
    printf("score before: %.17g\n", score_before);

    CHECK(kedit_apply_edits(editor, requests, edit_id, sizeof edit_id, &needed));
    printf("edit: %s\n", edit_id);
    CHECK(generate(editor, prompt, max_new_tokens, &after));
    CHECK(kedit_score(editor, prompt, candidate, &score_after));
    print_text("after", after);
    printf("score after: %.17g\n", score_after);
    CHECK(list_edits(editor, &edits));
    printf("edits: %s\n", edits);
    free(edits);
    edits = NULL;

    CHECK(kedit_rollback(editor, edit_id));
    CHECK(generate(editor, prompt, max_new_tokens, &restored));
    CHECK(kedit_score(editor, prompt, candidate, &score_restored));
    print_text("after rollback", restored);
    printf("score after rollback: %.17g\n", score_restored);
    CHECK(list_edits(editor, &edits));
    printf("edits after rollback: %s\n", edits);

    if (strcmp(before, restored) != 0 || score_before != score_restored) {
        fprintf(stderr, "FAIL: the rollback did not restore the generation and score exactly\n");
        goto done;
    }
    printf("rollback restored the generation byte for byte\n");
    ok = 1;

done:
    kedit_close(editor);
    free(requests);
    free(before);
    free(after);
    free(restored);
    free(edits);
    return ok ? 0 : 1;
}
