/*
 * Drives libkedit's failure paths for CAbiTests; prints one line per case, "case: status=S needed=N error=...",
 * for the test to assert on. Compiled by the test against the libkedit.so it built.
 *   kedit_error_paths host                 first call only (run with KEDIT_HOME pointing at no Kedit.Native)
 *   kedit_error_paths api MODEL_DIR HPARAMS_JSON REQUESTS_JSON_TEXT EXPORT_DIR
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kedit.h"

static void report(const char *name, kedit_status status, size_t needed)
{
    printf("%s: status=%d needed=%zu error=%s\n", name, (int)status, needed, status == KEDIT_OK ? "" : kedit_last_error());
}

/* The call runs before its status and *needed are printed. */
#define REPORT(name, call)                     \
    do {                                       \
        needed = 0;                            \
        kedit_status status_ = (call);         \
        report(name, status_, needed);         \
    } while (0)

static kedit_editor *cancel_target;
static atomic_int edit_done;

static void *keep_cancelling(void *unused)
{
    (void)unused;
    struct timespec pause = { 0, 1000000 };
    while (!atomic_load(&edit_done)) {
        kedit_cancel(cancel_target);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    kedit_editor *editor = NULL;
    size_t needed = 0;
    if (argc == 2 && strcmp(argv[1], "host") == 0) {
        REPORT("host_open", kedit_open("model", "rome", "{}", NULL, &editor));
        REPORT("host_again", kedit_generate(editor, "x", 1, NULL, 0, &needed));
        printf("host_version: %s\n", kedit_version());
        printf("host_status_string: %s\n", kedit_status_string(KEDIT_HOST_ERROR));
        return 0;
    }
    if (argc != 6 || strcmp(argv[1], "api") != 0) {
        fprintf(stderr, "usage: %s host | api MODEL_DIR HPARAMS_JSON REQUESTS_JSON_TEXT EXPORT_DIR\n", argv[0]);
        return 2;
    }
    const char *model = argv[2], *hparams = argv[3], *requests = argv[4], *export_dir = argv[5];

    printf("version: %s\n", kedit_version());
    for (int status = -1; status <= 8; status++)
        printf("status_string %d: %s\n", status, kedit_status_string((kedit_status)status));

    REPORT("open_missing_dir", kedit_open("/nonexistent/kedit-model", "rome", hparams, NULL, &editor));
    REPORT("open_bad_method", kedit_open(model, "sgd", hparams, NULL, &editor));
    REPORT("open_null_dir", kedit_open(NULL, "rome", hparams, NULL, &editor));
    REPORT("generate_null_editor", kedit_generate(NULL, "x", 1, NULL, 0, &needed));
    kedit_status s = kedit_open(model, "rome", hparams, NULL, &editor);
    report("open", s, 0);
    if (s != KEDIT_OK) return 1;

    char small[4], *text = NULL;
    REPORT("generate_small", kedit_generate(editor, "The home of Tom", 6, small, sizeof small, &needed));
    size_t first_needed = needed;
    REPORT("generate_size_query", kedit_generate(editor, "The home of Tom", 6, NULL, 0, &needed));
    text = malloc(first_needed);
    s = kedit_generate(editor, "The home of Tom", 6, text, first_needed, &needed);
    report("generate_retry", s, needed);
    if (s == KEDIT_OK) printf("generate_retry_length: %zu\n", strlen(text) + 1);

    double nll = 0;
    REPORT("score_null_out", kedit_score(editor, "The home of Tom", " Oslo", NULL));
    REPORT("score_null_candidate", kedit_score(editor, "The home of Tom", NULL, &nll));

    char id[KEDIT_EDIT_ID_CAPACITY];
    REPORT("apply_small_id_buffer", kedit_apply_edits(editor, requests, id, 8, &needed));
    REPORT("apply_bad_json", kedit_apply_edits(editor, "not json", id, sizeof id, &needed));
    REPORT("rollback_unknown", kedit_rollback(editor, "e42"));
    REPORT("apply_within_1ms", kedit_apply_edits_within(editor, requests, 1, id, sizeof id, &needed));
    REPORT("apply_within_zero", kedit_apply_edits_within(editor, requests, 0, id, sizeof id, &needed));
    char memory[512];
    REPORT("memory", kedit_memory(editor, memory, sizeof memory, &needed));
    printf("memory_json: %s\n", memory);

    /* Cancel from another thread until the edit returns. */
    cancel_target = editor;
    pthread_t canceller;
    pthread_create(&canceller, NULL, keep_cancelling, NULL);
    s = kedit_apply_edits(editor, requests, id, sizeof id, &needed);
    atomic_store(&edit_done, 1);
    pthread_join(canceller, NULL);
    report("apply_cancelled", s, 0);

    char list[256];
    s = kedit_list_edits(editor, list, sizeof list, &needed);
    report("list_after_failures", s, needed);
    if (s == KEDIT_OK) printf("edits: %s\n", list);
    char *again = malloc(first_needed);
    s = kedit_generate(editor, "The home of Tom", 6, again, first_needed, &needed);
    report("generate_after_failures", s, needed);
    if (s == KEDIT_OK) printf("generation_unchanged: %s\n", strcmp(text, again) == 0 ? "yes" : "no");

    REPORT("export", kedit_export(editor, export_dir));
    char unwritable[4096];
    snprintf(unwritable, sizeof unwritable, "%s/model.safetensors/sub", export_dir); /* its parent is a file */
    REPORT("export_unwritable", kedit_export(editor, unwritable));

    kedit_close(editor);
    free(text);
    free(again);
    return 0;
}
