using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Models;

/// <summary>
/// The forward pass against the fixtures' float64 goldens (an independent PyTorch implementation):
/// logits, every block output, the MLP key/value at the last token, and padded batches.
/// Acceptance per tests/fixtures/README.md: rel_l2 ≤ 1e-5 and |Δlogit| ≤ 1e-4 for a float32 engine.
/// </summary>
public class ForwardGoldenTests
{
    public static TheoryData<string> Models => new() { "gpt2", "llama", "gptj", "gpt2_f16", "gpt2_bf16" };

    const double RelTol = 1e-5, LogitAbsTol = 1e-4;

    [Theory, MemberData(nameof(Models))]
    public void SingleSequencesMatchGoldens(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        var c = model.Config;
        for (int s = 0; gold.TryGetInfo($"seq{s}.ids", out _); s++)
        {
            var ids = gold.ReadInt64($"seq{s}.ids").Select(i => (int)i).ToArray();
            var hooks = new ForwardHooks()
                .CaptureAll(c.Layers, HookPoint.Embedding, HookPoint.BlockOutput, HookPoint.MlpKey, HookPoint.MlpValue);
            var r = model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks });
            Compare.Close($"{name} seq{s} logits", r.Logits, gold.ReadFloat64($"seq{s}.logits"), RelTol, LogitAbsTol);
            Compare.Close($"{name} seq{s} hidden.0", hooks.Captured(0, HookPoint.Embedding), gold.ReadFloat64($"seq{s}.hidden.0"), RelTol);
            int T = ids.Length, last = T - 1;
            for (int l = 0; l < c.Layers; l++)
            {
                Compare.Close($"{name} seq{s} hidden.{l + 1}", hooks.Captured(l, HookPoint.BlockOutput), gold.ReadFloat64($"seq{s}.hidden.{l + 1}"), RelTol);
                var key = hooks.Captured(l, HookPoint.MlpKey).AsSpan(last * c.Intermediate, c.Intermediate);
                Compare.Close($"{name} seq{s} key L{l}", key, gold.ReadFloat64($"seq{s}.mlp_down_in_last.L{l}"), RelTol);
                var val = hooks.Captured(l, HookPoint.MlpValue).AsSpan(last * c.Hidden, c.Hidden);
                Compare.Close($"{name} seq{s} value L{l}", val, gold.ReadFloat64($"seq{s}.mlp_down_out_last.L{l}"), RelTol);
            }
        }
    }

    [Theory, MemberData(nameof(Models))]
    public void PaddedBatchesMatchSingleSequenceGoldens(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        int V = model.Config.VocabSize;
        foreach (var side in new[] { "batch_right", "batch_left" })
        {
            TokenBatch batch;
            if (gold.TryGetInfo($"{side}.ids", out var info))
            {
                int rows = (int)info.Shape[0], len = (int)info.Shape[1];
                batch = new TokenBatch(rows, len, gold.ReadInt64($"{side}.ids").Select(i => (int)i).ToArray(),
                    gold.ReadInt64($"{side}.mask").Select(m => m != 0).ToArray());
            }
            else
            {
                // The F16/BF16 copies carry no padded batches: pad their sequences ourselves.
                var seqs = Enumerable.Range(0, 3).Select(i => (IReadOnlyList<int>)gold.ReadInt64($"seq{i}.ids").Select(x => (int)x).ToArray()).ToList();
                batch = side == "batch_right" ? TokenBatch.RightPadded(seqs) : TokenBatch.LeftPadded(seqs);
            }
            int B = batch.Size, T = batch.Length;
            var r = model.Forward(batch);
            for (int b = 0; b < B; b++)
            {
                var expected = gold.ReadFloat64($"seq{b}.logits");
                int n = batch.RealLength(b);
                Assert.Equal(n * V, expected.Length);
                var actual = new float[n * V];
                for (int k = 0; k < n; k++) r.Row(b * T + batch.RealIndex(b, k)).CopyTo(actual.AsSpan(k * V, V));
                Compare.Close($"{name} {side} row {b} logits", actual, expected, RelTol, LogitAbsTol);
            }
        }
    }

    [Theory, MemberData(nameof(Models))]
    public void IncrementalDecodingWithCacheEqualsFullForward(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        var ids = gold.ReadInt64("seq0.ids").Select(i => (int)i).ToArray();
        var expected = gold.ReadFloat64("seq0.logits");
        int V = model.Config.VocabSize;
        using var cache = model.CreateCache(1, ids.Length);
        // Prompt split in two chunks, then one token at a time: every step's logits equal the golden row.
        int split = ids.Length / 2;
        var actual = new List<float>();
        actual.AddRange(model.Forward(TokenBatch.Single(ids[..split]), cache).Logits);
        for (int t = split; t < ids.Length; t++)
            actual.AddRange(model.Forward(TokenBatch.Single(new[] { ids[t] }), cache).Logits);
        Compare.Close($"{name} cached decoding", actual.ToArray(), expected, RelTol, LogitAbsTol);
    }

    [Fact]
    public void PatchingTheBlockOutputChangesOnlyLaterPositions()
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var ids = new[] { 5, 17, 42, 99, 7 };
        var baseLogits = model.Forward(TokenBatch.Single(ids)).Logits;
        var delta = Enumerable.Range(0, model.Config.Hidden).Select(i => (float)Math.Sin(i)).ToArray();
        var hooks = new ForwardHooks().Add(1, HookPoint.BlockOutput, 0, 2, delta);
        var patched = model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks }).Logits;
        int V = model.Config.VocabSize;
        for (int t = 0; t < ids.Length; t++)
        {
            double diff = 0;
            for (int v = 0; v < V; v++) diff = Math.Max(diff, Math.Abs(patched[t * V + v] - baseLogits[t * V + v]));
            if (t < 2) Assert.Equal(0.0, diff);          // causal: earlier positions cannot see the patch
            else Assert.True(diff > 1e-3, $"position {t} did not change");
        }
    }
}
