/*
 * kedit.c - libkedit.so: the C side of kedit's C ABI (see kedit.h).
 *
 * Starts the .NET runtime once per process with hostfxr (found through nethost), loads Kedit.Native.dll
 * as a component, resolves one [UnmanagedCallersOnly] export per API function and forwards to it.
 * Managed failures arrive as a status plus a message the managed side passes to receive_error on the
 * calling thread; host failures are recorded once and reported by every call.
 */
#define _GNU_SOURCE
#include "kedit.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coreclr_delegates.h>
#include <hostfxr.h>
#include <nethost.h>

#define NATIVE_TYPE "Kedit.Native.NativeExports, Kedit.Native"

typedef int (*initialize_fn)(void (*set_error)(const char *message));
typedef int (*open_fn)(const char *, const char *, const char *, const char *, kedit_editor **);
typedef int (*generate_fn)(kedit_editor *, const char *, int32_t, char *, size_t, size_t *);
typedef int (*score_fn)(kedit_editor *, const char *, const char *, double *);
typedef int (*apply_edits_fn)(kedit_editor *, const char *, char *, size_t, size_t *);
typedef int (*editor_fn)(kedit_editor *);
typedef int (*editor_string_fn)(kedit_editor *, const char *);
typedef int (*apply_edits_within_fn)(kedit_editor *, const char *, uint32_t, char *, size_t, size_t *);
typedef int (*list_edits_fn)(kedit_editor *, char *, size_t, size_t *);
typedef int (*version_fn)(char *, size_t, size_t *);

static struct {
    open_fn open;
    generate_fn generate;
    score_fn score;
    apply_edits_fn apply_edits;
    apply_edits_within_fn apply_edits_within;
    list_edits_fn memory;
    editor_fn cancel;
    editor_string_fn rollback;
    list_edits_fn list_edits;
    editor_string_fn export_model;
    editor_fn close;
    version_fn version;
} managed;

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static kedit_status host_status = KEDIT_HOST_ERROR;
static char host_error[2048];
/* hostfxr's own messages while starting (it reports them on the starting thread, through the error writer). */
static char host_messages[1024];

/* Fixed-size so that recording an error can neither fail nor leak when a thread exits. */
static __thread char last_error[4096];

static void set_last_error(const char *message)
{
    snprintf(last_error, sizeof last_error, "%s", message);
}

/* Called by the managed side (NativeExports.SetError) on the failing thread. */
static void receive_error(const char *message)
{
    set_last_error(message);
}

static void collect_host_message(const char_t *message)
{
    size_t used = strlen(host_messages);
    snprintf(host_messages + used, sizeof host_messages - used, "%s%s", used ? "; " : "", message);
}

static void host_fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(host_error, sizeof host_error, format, args);
    va_end(args);
    host_status = KEDIT_HOST_ERROR;
}

/* KEDIT_HOME, else the directory of libkedit.so itself. */
static int find_home(char *dir, size_t capacity)
{
    const char *home = getenv("KEDIT_HOME");
    if (home && *home) {
        snprintf(dir, capacity, "%s", home);
        return 1;
    }
    Dl_info info;
    char resolved[PATH_MAX];
    if (!dladdr((void *)&kedit_open, &info) || !info.dli_fname || !realpath(info.dli_fname, resolved)) {
        host_fail("cannot locate libkedit.so to find Kedit.Native.dll beside it; set KEDIT_HOME");
        return 0;
    }
    char *slash = strrchr(resolved, '/');
    if (slash) *slash = '\0';
    snprintf(dir, capacity, "%s", resolved);
    return 1;
}

static void init_host(void)
{
    char dir[PATH_MAX], dll[PATH_MAX + 32], config[PATH_MAX + 48];
    if (!find_home(dir, sizeof dir)) return;
    snprintf(dll, sizeof dll, "%s/Kedit.Native.dll", dir);
    snprintf(config, sizeof config, "%s/Kedit.Native.runtimeconfig.json", dir);
    const char *from = getenv("KEDIT_HOME") && *getenv("KEDIT_HOME") ? "KEDIT_HOME" : "the directory of libkedit.so";
    if (access(dll, R_OK) != 0) {
        host_fail("%s: not found (looked in %s; set KEDIT_HOME to the Kedit.Native build or publish output)", dll, from);
        return;
    }
    if (access(config, R_OK) != 0) {
        host_fail("%s: not found (Kedit.Native must be built with its runtimeconfig.json)", config);
        return;
    }

    char fxr_path[PATH_MAX];
    size_t fxr_size = sizeof fxr_path;
    struct get_hostfxr_parameters params = { sizeof params, dll, NULL };
    int rc = get_hostfxr_path(fxr_path, &fxr_size, &params);
    if (rc != 0) {
        host_fail("cannot find the .NET runtime (hostfxr; error 0x%x): install .NET 10 or set DOTNET_ROOT", (unsigned)rc);
        return;
    }
    void *fxr = dlopen(fxr_path, RTLD_NOW | RTLD_LOCAL);
    if (!fxr) {
        host_fail("%s: cannot load: %s", fxr_path, dlerror());
        return;
    }
    hostfxr_initialize_for_runtime_config_fn init_config =
        (hostfxr_initialize_for_runtime_config_fn)dlsym(fxr, "hostfxr_initialize_for_runtime_config");
    hostfxr_get_runtime_delegate_fn get_delegate = (hostfxr_get_runtime_delegate_fn)dlsym(fxr, "hostfxr_get_runtime_delegate");
    hostfxr_close_fn close_context = (hostfxr_close_fn)dlsym(fxr, "hostfxr_close");
    hostfxr_set_error_writer_fn set_error_writer = (hostfxr_set_error_writer_fn)dlsym(fxr, "hostfxr_set_error_writer");
    if (!init_config || !get_delegate || !close_context || !set_error_writer) {
        host_fail("%s: not a usable hostfxr (missing hosting exports)", fxr_path);
        return;
    }

    hostfxr_error_writer_fn previous_writer = set_error_writer(collect_host_message);
    hostfxr_handle context = NULL;
    load_assembly_and_get_function_pointer_fn load = NULL;
    rc = init_config(config, NULL, &context);
    if (rc < 0 || !context) {
        host_fail("%s: the .NET runtime did not start (0x%x): %s", config, (unsigned)rc, host_messages);
    } else {
        rc = get_delegate(context, hdt_load_assembly_and_get_function_pointer, (void **)&load);
        if (rc < 0 || !load) host_fail("cannot get the .NET component loader (0x%x): %s", (unsigned)rc, host_messages);
    }
    if (context) close_context(context);

    struct { const char *name; void **slot; } exports[] = {
        { "Open", (void **)&managed.open },
        { "Generate", (void **)&managed.generate },
        { "Score", (void **)&managed.score },
        { "ApplyEdits", (void **)&managed.apply_edits },
        { "ApplyEditsWithin", (void **)&managed.apply_edits_within },
        { "Memory", (void **)&managed.memory },
        { "Cancel", (void **)&managed.cancel },
        { "Rollback", (void **)&managed.rollback },
        { "ListEdits", (void **)&managed.list_edits },
        { "Export", (void **)&managed.export_model },
        { "Close", (void **)&managed.close },
        { "Version", (void **)&managed.version },
    };
    initialize_fn initialize = NULL;
    int loaded = load != NULL;
    if (loaded) {
        rc = load(dll, NATIVE_TYPE, "Initialize", UNMANAGEDCALLERSONLY_METHOD, NULL, (void **)&initialize);
        for (size_t i = 0; rc == 0 && i < sizeof exports / sizeof exports[0]; i++)
            rc = load(dll, NATIVE_TYPE, exports[i].name, UNMANAGEDCALLERSONLY_METHOD, NULL, exports[i].slot);
        if (rc != 0) {
            host_fail("%s: cannot bind the kedit exports (0x%x; is it the same version as libkedit.so?): %s",
                      dll, (unsigned)rc, host_messages);
            loaded = 0;
        }
    }
    set_error_writer(previous_writer);
    if (!loaded) return;
    if (initialize(receive_error) != 0) {
        host_fail("%s: initialisation failed", dll);
        return;
    }
    host_status = KEDIT_OK;
}

/* Starts the runtime on the first call (once, whichever thread gets there first). */
static kedit_status host(void)
{
    pthread_once(&host_once, init_host);
    if (host_status != KEDIT_OK) set_last_error(host_error);
    return host_status;
}

kedit_status kedit_open(const char *model_dir, const char *method, const char *hparams,
                        const char *stats_path, kedit_editor **editor)
{
    if (editor) *editor = NULL;
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.open(model_dir, method, hparams, stats_path, editor);
}

kedit_status kedit_generate(kedit_editor *editor, const char *prompt, int32_t max_new_tokens,
                            char *buf, size_t capacity, size_t *needed)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.generate(editor, prompt, max_new_tokens, buf, capacity, needed);
}

kedit_status kedit_score(kedit_editor *editor, const char *prompt, const char *candidate, double *nll)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.score(editor, prompt, candidate, nll);
}

kedit_status kedit_apply_edits(kedit_editor *editor, const char *requests_json,
                               char *id_buf, size_t id_capacity, size_t *needed)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.apply_edits(editor, requests_json, id_buf, id_capacity, needed);
}

kedit_status kedit_apply_edits_within(kedit_editor *editor, const char *requests_json, uint32_t timeout_ms,
                                      char *id_buf, size_t id_capacity, size_t *needed)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.apply_edits_within(editor, requests_json, timeout_ms, id_buf, id_capacity, needed);
}

kedit_status kedit_memory(kedit_editor *editor, char *buf, size_t capacity, size_t *needed)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.memory(editor, buf, capacity, needed);
}

kedit_status kedit_cancel(kedit_editor *editor)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.cancel(editor);
}

kedit_status kedit_rollback(kedit_editor *editor, const char *edit_id)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.rollback(editor, edit_id);
}

kedit_status kedit_list_edits(kedit_editor *editor, char *buf, size_t capacity, size_t *needed)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.list_edits(editor, buf, capacity, needed);
}

kedit_status kedit_export(kedit_editor *editor, const char *out_dir)
{
    kedit_status s = host();
    return s != KEDIT_OK ? s : (kedit_status)managed.export_model(editor, out_dir);
}

void kedit_close(kedit_editor *editor)
{
    if (editor && host() == KEDIT_OK) managed.close(editor);
}

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char version[256] = "unknown";

static void read_version(void)
{
    size_t needed = 0;
    char buf[sizeof version];
    if (managed.version(buf, sizeof buf, &needed) == KEDIT_OK) snprintf(version, sizeof version, "%s", buf);
}

const char *kedit_version(void)
{
    if (host() != KEDIT_OK) return "unknown";
    pthread_once(&version_once, read_version);
    return version;
}

const char *kedit_status_string(kedit_status status)
{
    switch (status) {
    case KEDIT_OK: return "ok";
    case KEDIT_INVALID_ARGUMENT: return "invalid argument";
    case KEDIT_ERROR: return "error";
    case KEDIT_CANCELLED: return "cancelled";
    case KEDIT_BUFFER_TOO_SMALL: return "buffer too small";
    case KEDIT_INTERNAL_ERROR: return "internal error";
    case KEDIT_HOST_ERROR: return "host error";
    case KEDIT_TIMEOUT: return "timeout";
    }
    return "unknown status";
}

const char *kedit_last_error(void)
{
    return last_error;
}
