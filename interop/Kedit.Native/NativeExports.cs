using Kedit.Editing.Inputs;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Kedit.Api;

namespace Kedit.Native;

/// <summary>
/// The managed half of the C ABI (interop/libkedit/kedit.h): one <see cref="UnmanagedCallersOnlyAttribute"/>
/// export per C function, called by libkedit.so through hostfxr's load_assembly_and_get_function_pointer.
/// </summary>
/// <remarks>
/// Every export returns a <see cref="Status"/> and catches every exception: nothing may unwind into C.
/// Strings are NUL-terminated UTF-8 both ways; outputs go into caller-owned buffers with the size needed
/// (NUL included) reported so that the caller can retry. An editor is a <see cref="GCHandle"/> to an
/// <see cref="EditorHandle"/>. Failure messages are handed to the C side's thread-local last error through
/// the callback given to <see cref="Initialize"/>, on the calling thread.
/// </remarks>
public static unsafe class NativeExports
{
    /// <summary>Status codes; must match kedit_status in kedit.h.</summary>
    public enum Status
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A NULL pointer, a closed editor or a malformed argument.</summary>
        InvalidArgument = 1,
        /// <summary>A <see cref="KeditException"/> (bad model, hparams, statistics, requests or edit id) or a file that cannot be read or written.</summary>
        Kedit = 2,
        /// <summary>The operation was cancelled with kedit_cancel; nothing changed.</summary>
        Cancelled = 3,
        /// <summary>The output buffer is too small; the size needed was written.</summary>
        BufferTooSmall = 4,
        /// <summary>An unexpected failure (a bug); the message names the exception.</summary>
        Internal = 5,
        /// <summary>(6 is KEDIT_HOST_ERROR, raised by the C side only.) The call ran past its time budget; nothing changed.</summary>
        Timeout = 7,
    }

    /// <summary>
    /// Capacity kedit_apply_edits requires of its id buffer before it applies anything, so that a too-small
    /// buffer never leaves an applied edit whose id the caller could not learn. Edit ids ("e1", "e2", ...) are far shorter.
    /// </summary>
    public const int EditIdCapacity = 64;

    static delegate* unmanaged<byte*, void> s_setError;

    /// <summary>Live editor behind a handle: the editor plus the source kedit_cancel fires.</summary>
    sealed class EditorHandle(KnowledgeEditor editor)
    {
        public readonly KnowledgeEditor Editor = editor;
        public CancellationTokenSource Cancellation = new();
    }

    /// <summary>Bad input detected at the boundary (NULL pointer, closed editor); maps to <see cref="Status.InvalidArgument"/>.</summary>
    sealed class InvalidArgumentException(string message) : Exception(message);

    /// <summary>Registers the C callback that stores the calling thread's last error (a UTF-8 string copied before it returns).</summary>
    [UnmanagedCallersOnly]
    public static int Initialize(delegate* unmanaged<byte*, void> setError)
    {
        s_setError = setError;
        return (int)Status.Ok;
    }

    /// <summary>kedit_open: loads <paramref name="modelDir"/> for editing with <paramref name="method"/>.</summary>
    /// <param name="hparams">A hparams file path, or hparams JSON text (recognised by a leading '{').</param>
    /// <param name="statsPath">Key statistics file, or NULL where the method needs none.</param>
    [UnmanagedCallersOnly]
    public static int Open(byte* modelDir, byte* method, byte* hparams, byte* statsPath, nint* editor)
    {
        try
        {
            if (editor == null) throw new InvalidArgumentException("editor: the out pointer is NULL");
            *editor = 0;
            string dir = Utf8(modelDir, "model_dir"), hp = Utf8(hparams, "hparams");
            var options = new EditorOptions
            {
                Method = EditorOptions.ParseMethod(Utf8(method, "method")),
                HParamsPath = IsJson(hp) ? null : hp,
                HParamsJson = IsJson(hp) ? hp : null,
                StatsPath = statsPath == null ? null : Utf8(statsPath, "stats_path"),
            };
            var loaded = KnowledgeEditor.Load(dir, options);
            *editor = GCHandle.ToIntPtr(GCHandle.Alloc(new EditorHandle(loaded)));
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_generate: greedy continuation of the prompt (new text only) into <paramref name="buf"/>.</summary>
    [UnmanagedCallersOnly]
    public static int Generate(nint editor, byte* prompt, int maxNewTokens, byte* buf, nuint capacity, nuint* needed)
    {
        try
        {
            var h = Handle(editor);
            RequireNeeded(needed);
            string text = h.Editor.Generate(Utf8(prompt, "prompt"), maxNewTokens);
            return (int)WriteUtf8(text, buf, capacity, needed, "generated text");
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_score: mean NLL (nats per token) of the candidate after the prompt.</summary>
    [UnmanagedCallersOnly]
    public static int Score(nint editor, byte* prompt, byte* candidate, double* nll)
    {
        try
        {
            var h = Handle(editor);
            if (nll == null) throw new InvalidArgumentException("nll: the out pointer is NULL");
            *nll = h.Editor.Score(Utf8(prompt, "prompt"), Utf8(candidate, "candidate"));
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_apply_edits: applies the requests as one edit and writes its id.</summary>
    [UnmanagedCallersOnly]
    public static int ApplyEdits(nint editor, byte* requestsJson, byte* idBuf, nuint capacity, nuint* needed) =>
        Apply(editor, requestsJson, null, idBuf, capacity, needed);

    /// <summary>kedit_apply_edits_within: as kedit_apply_edits, abandoned (KEDIT_TIMEOUT, nothing published) past timeout_ms.</summary>
    [UnmanagedCallersOnly]
    public static int ApplyEditsWithin(nint editor, byte* requestsJson, uint timeoutMs, byte* idBuf, nuint capacity, nuint* needed) =>
        timeoutMs == 0 ? Fail(new InvalidArgumentException("timeout_ms: must be positive"))
                       : Apply(editor, requestsJson, TimeSpan.FromMilliseconds(timeoutMs), idBuf, capacity, needed);

    static int Apply(nint editor, byte* requestsJson, TimeSpan? budget, byte* idBuf, nuint capacity, nuint* needed)
    {
        try
        {
            var h = Handle(editor);
            RequireNeeded(needed);
            // Refuse before editing: a retry after a too-small buffer must not apply the edit twice.
            if (idBuf == null || capacity < EditIdCapacity)
            {
                *needed = EditIdCapacity;
                SetError($"edit id: buffer of {capacity} bytes is too small, {EditIdCapacity} needed (nothing was applied)");
                return (int)Status.BufferTooSmall;
            }
            var requests = RequestLoader.Parse(Utf8(requestsJson, "requests_json"), "requests");
            var record = budget is TimeSpan b ? h.Editor.ApplyEdits(requests, b, h.Cancellation.Token) : h.Editor.ApplyEdits(requests, h.Cancellation.Token);
            return (int)WriteUtf8(record.Id, idBuf, capacity, needed, "edit id");
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_memory: the editor's memory report as a JSON object of byte counts.</summary>
    [UnmanagedCallersOnly]
    public static int Memory(nint editor, byte* buf, nuint capacity, nuint* needed)
    {
        try
        {
            var h = Handle(editor);
            RequireNeeded(needed);
            var m = h.Editor.Memory();
            string json = new JsonObject
            {
                ["model_weights"] = m.ModelWeights, ["edited_layer_copies"] = m.EditedLayerCopies, ["statistics"] = m.Statistics,
                ["edit_state"] = m.EditState, ["editor_total"] = m.Editor, ["managed_heap"] = m.ManagedHeap, ["working_set"] = m.WorkingSet,
            }.ToJsonString();
            return (int)WriteUtf8(json, buf, capacity, needed, "memory report");
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_cancel: cancels the edits and rollback waits running on the editor now; later calls are unaffected.</summary>
    [UnmanagedCallersOnly]
    public static int Cancel(nint editor)
    {
        try
        {
            var h = Handle(editor);
            Interlocked.Exchange(ref h.Cancellation, new CancellationTokenSource()).Cancel();
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_rollback: removes one edit by id.</summary>
    [UnmanagedCallersOnly]
    public static int Rollback(nint editor, byte* editId)
    {
        try
        {
            var h = Handle(editor);
            h.Editor.Rollback(Utf8(editId, "edit_id"), h.Cancellation.Token);
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_version: the product version (the engine assembly's informational version) into <paramref name="buf"/>.</summary>
    [UnmanagedCallersOnly]
    public static int Version(byte* buf, nuint capacity, nuint* needed)
    {
        try
        {
            RequireNeeded(needed);
            return (int)WriteUtf8(ProductVersion, buf, capacity, needed, "version");
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>The informational version of the engine (the version <c>kedit --version</c> prints, from the same build).</summary>
    static string ProductVersion =>
        typeof(KnowledgeEditor).Assembly.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(KnowledgeEditor).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    /// <summary>kedit_list_edits: the applied edits as a JSON array of {id, applied_at, seconds, requests: [{prompt, subject, target_new}]}.</summary>
    [UnmanagedCallersOnly]
    public static int ListEdits(nint editor, byte* buf, nuint capacity, nuint* needed)
    {
        try
        {
            var h = Handle(editor);
            RequireNeeded(needed);
            return (int)WriteUtf8(EditsJson(h.Editor.ListEdits()), buf, capacity, needed, "edit list");
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_export: writes the edited model directory like <c>kedit edit</c>.</summary>
    [UnmanagedCallersOnly]
    public static int Export(nint editor, byte* outDir)
    {
        try
        {
            Handle(editor).Editor.Export(Utf8(outDir, "out_dir"));
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>kedit_close: waits for a running edit, releases the model and frees the handle. NULL is a no-op.</summary>
    [UnmanagedCallersOnly]
    public static int Close(nint editor)
    {
        try
        {
            if (editor == 0) return (int)Status.Ok;
            var gc = GCHandle.FromIntPtr(editor);
            var h = gc.Target as EditorHandle ?? throw new InvalidArgumentException("editor: not an editor handle");
            h.Editor.Dispose();
            gc.Free();
            return (int)Status.Ok;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>The same fields as <c>kedit serve</c>'s GET /edits.</summary>
    internal static string EditsJson(IReadOnlyList<EditRecord> edits) =>
        new JsonArray(edits.Select(r => (JsonNode)r.ToJson()).ToArray()).ToJsonString();

    static bool IsJson(string hparams) => hparams.TrimStart().StartsWith('{');

    static EditorHandle Handle(nint editor)
    {
        if (editor == 0) throw new InvalidArgumentException("editor: the handle is NULL");
        return GCHandle.FromIntPtr(editor).Target as EditorHandle ?? throw new InvalidArgumentException("editor: not an editor handle");
    }

    static string Utf8(byte* s, string name) =>
        s == null ? throw new InvalidArgumentException($"{name}: the string is NULL") : Marshal.PtrToStringUTF8((nint)s)!;

    static void RequireNeeded(nuint* needed)
    {
        if (needed == null) throw new InvalidArgumentException("needed: the out pointer is NULL");
    }

    /// <summary>Writes <paramref name="text"/> NUL-terminated if it fits; reports the size needed either way.</summary>
    static Status WriteUtf8(string text, byte* buf, nuint capacity, nuint* needed, string what)
    {
        int bytes = Encoding.UTF8.GetByteCount(text);
        *needed = (nuint)bytes + 1;
        if (buf == null && capacity > 0) throw new InvalidArgumentException($"{what}: the buffer is NULL but its capacity is {capacity}");
        if (capacity < (nuint)bytes + 1)
        {
            SetError($"{what}: buffer of {capacity} bytes is too small, {bytes + 1} needed");
            return Status.BufferTooSmall;
        }
        Encoding.UTF8.GetBytes(text, new Span<byte>(buf, bytes));
        buf[bytes] = 0;
        return Status.Ok;
    }

    static int Fail(Exception e)
    {
        // No exception may escape an UnmanagedCallersOnly method: the process would be torn down.
        try
        {
            var (status, message) = e switch
            {
                KeditException => (Status.Kedit, e.Message),
                // A file that cannot be read or written (e.g. an export directory): the message names it.
                IOException or UnauthorizedAccessException => (Status.Kedit, e.Message),
                TimeoutException => (Status.Timeout, e.Message),
                OperationCanceledException => (Status.Cancelled, "cancelled by kedit_cancel; the weights are unchanged"),
                InvalidArgumentException => (Status.InvalidArgument, e.Message),
                ObjectDisposedException => (Status.InvalidArgument, "editor: the editor is closed"),
                _ => (Status.Internal, $"internal error: {e.GetType().FullName}: {e.Message}"),
            };
            SetError(message);
            return (int)status;
        }
        catch { return (int)Status.Internal; }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void SetError(string message)
    {
        if (s_setError == null) return;
        byte[] utf8 = new byte[Encoding.UTF8.GetByteCount(message) + 1];
        Encoding.UTF8.GetBytes(message, utf8);
        fixed (byte* p = utf8) s_setError(p);
    }
}
