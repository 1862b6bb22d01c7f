/*
 * kedit.h - C API of kedit: load a transformer model, generate and score with it, and apply / roll back
 * ROME, MEMIT and D4S knowledge edits in-process.
 *
 * libkedit.so hosts the .NET runtime (through hostfxr) and forwards each call to Kedit.Native.dll, which
 * it looks for in $KEDIT_HOME when that is set, else in the directory libkedit.so itself lives in.
 * The runtime is started on the first call; if that fails (no .NET runtime, Kedit.Native.dll missing)
 * every call returns KEDIT_HOST_ERROR with the reason in kedit_last_error().
 *
 * Conventions:
 *  - Every function returns a kedit_status; on anything but KEDIT_OK, kedit_last_error() says why.
 *  - Strings in and out are NUL-terminated UTF-8.
 *  - Outputs are written into caller-owned buffers (buf, capacity in bytes). *needed always receives the
 *    size the output takes, NUL included; when it exceeds the capacity the call returns
 *    KEDIT_BUFFER_TOO_SMALL, writes nothing into buf, and can be retried with a buffer of *needed bytes.
 *    buf may be NULL when capacity is 0 (a pure size query, which still does the work).
 *  - Thread safety: all functions may be called concurrently on one editor (generation and scoring
 *    proceed in parallel and see either all of an edit or none of it; edits and rollbacks run one at a
 *    time), except kedit_close, which must be the last call on an editor.
 */
#ifndef KEDIT_H
#define KEDIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KEDIT_API __attribute__((visibility("default")))
#else
#define KEDIT_API
#endif

/** Result of every call. */
typedef enum kedit_status {
    KEDIT_OK = 0,
    /** A NULL pointer where a value is required, an invalid handle, or a closed editor. */
    KEDIT_INVALID_ARGUMENT = 1,
    /** Bad user input (model directory, method, hparams, statistics, requests, edit id) or a file that cannot
     *  be read or written; the message names it. */
    KEDIT_ERROR = 2,
    /** Cancelled by kedit_cancel; the served weights are unchanged. */
    KEDIT_CANCELLED = 3,
    /** The output buffer is too small; *needed holds the size to retry with. */
    KEDIT_BUFFER_TOO_SMALL = 4,
    /** An unexpected failure inside kedit (a bug: please report the message). */
    KEDIT_INTERNAL_ERROR = 5,
    /** The .NET runtime or Kedit.Native.dll could not be loaded. */
    KEDIT_HOST_ERROR = 6,
    /** The call ran past its time budget (kedit_apply_edits_within); the served weights are unchanged. */
    KEDIT_TIMEOUT = 7
} kedit_status;

/** An open editor: one loaded model plus its applied edits. */
typedef struct kedit_editor kedit_editor;

/** Capacity kedit_apply_edits requires of its id buffer (it refuses smaller buffers before editing). */
#define KEDIT_EDIT_ID_CAPACITY 64

/**
 * Loads a model for editing.
 * model_dir:  a Hugging Face model directory with a tokenizer.
 * method:     "rome", "memit", "d4s" or "alphaedit".
 * hparams:    a hparams JSON file path, or the JSON text itself (anything starting with '{').
 * stats_path: key statistics from `kedit stats`, or NULL (only ROME without mom2_adjustment needs none).
 * editor:     receives the editor (NULL on failure); release it with kedit_close.
 */
KEDIT_API kedit_status kedit_open(const char *model_dir, const char *method, const char *hparams,
                                  const char *stats_path, kedit_editor **editor);

/** Greedy continuation of prompt, max_new_tokens long (the new text only) into buf. Re-runs on a retry. */
KEDIT_API kedit_status kedit_generate(kedit_editor *editor, const char *prompt, int32_t max_new_tokens,
                                      char *buf, size_t capacity, size_t *needed);

/** Mean negative log-likelihood (nats per token) of candidate following prompt; lower is preferred. */
KEDIT_API kedit_status kedit_score(kedit_editor *editor, const char *prompt, const char *candidate, double *nll);

/**
 * Applies the requests (a JSON array in any format `kedit edit` accepts) as one edit and publishes the
 * new weights atomically; writes the edit's id into id_buf. id_capacity must be at least
 * KEDIT_EDIT_ID_CAPACITY, checked before anything is applied, so a retry never applies an edit twice.
 * A failed or cancelled edit leaves the weights as they were.
 */
KEDIT_API kedit_status kedit_apply_edits(kedit_editor *editor, const char *requests_json,
                                         char *id_buf, size_t id_capacity, size_t *needed);

/** As kedit_apply_edits, abandoned with KEDIT_TIMEOUT (nothing published) once timeout_ms (> 0) have passed. */
KEDIT_API kedit_status kedit_apply_edits_within(kedit_editor *editor, const char *requests_json, uint32_t timeout_ms,
                                                char *id_buf, size_t id_capacity, size_t *needed);

/** Cancels the edits (and rollbacks still waiting for one) running on the editor now; they return KEDIT_CANCELLED. */
KEDIT_API kedit_status kedit_cancel(kedit_editor *editor);

/** Removes one edit. D4S takes its terms out of the running sums (no target recomputed); ROME and MEMIT
 *  restore the original weights and re-apply the other edits in order. Removing every edit restores the
 *  original weights bit for bit. */
KEDIT_API kedit_status kedit_rollback(kedit_editor *editor, const char *edit_id);

/**
 * The applied edits, oldest first, as a JSON array:
 * [{"id":"e1","applied_at":"<ISO 8601>","seconds":1.2,"requests":[{"prompt":..,"subject":..,"target_new":..}]}].
 */
KEDIT_API kedit_status kedit_list_edits(kedit_editor *editor, char *buf, size_t capacity, size_t *needed);

/**
 * What the editor holds in memory, as a JSON object of byte counts: {"model_weights", "edited_layer_copies",
 * "statistics", "edit_state", "editor_total", "managed_heap", "working_set"}.
 */
KEDIT_API kedit_status kedit_memory(kedit_editor *editor, char *buf, size_t capacity, size_t *needed);

/** Writes the edited model to out_dir like `kedit edit` (model, deltas, originals, journal). */
KEDIT_API kedit_status kedit_export(kedit_editor *editor, const char *out_dir);

/** Waits for a running edit, then releases the editor. NULL is a no-op. */
KEDIT_API void kedit_close(kedit_editor *editor);

/**
 * The product version, e.g. "1.0.0+<commit>" (the version `kedit --version` prints for the same build): a static
 * string, valid for the life of the process. Starts the runtime on the first call; if it cannot start, returns
 * "unknown" and kedit_last_error() says why.
 */
KEDIT_API const char *kedit_version(void);

/** A static name for a status ("ok", "invalid argument", ..., "timeout"); "unknown status" for any other value. Needs no runtime. */
KEDIT_API const char *kedit_status_string(kedit_status status);

/** Why the last failed call on this thread failed (UTF-8; valid until this thread's next kedit call; "" if none). */
KEDIT_API const char *kedit_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KEDIT_H */
