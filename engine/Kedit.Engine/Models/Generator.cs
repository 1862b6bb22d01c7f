namespace Kedit.Models;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 32;
    /// <summary>0 = greedy (arg-max, ties to the lowest id).</summary>
    public float Temperature { get; init; }
    /// <summary>0 = no top-k cut.</summary>
    public int TopK { get; init; }
    public int Seed { get; init; }
    /// <summary>Tokens that end generation without being emitted; null = the model's EOS.</summary>
    public IReadOnlySet<int>? StopTokens { get; init; }
}

/// <summary>Autoregressive decoding with a KV cache: the prompt in one pass, then one token per step.</summary>
public static class Generator
{
    public static int[] Generate(Transformer model, IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? onToken = null) =>
        Generate(model, prompt, options, new Random(options.Seed), onToken);

    /// <summary>As above, drawing from a caller's random stream (several generations from one seed).</summary>
    public static int[] Generate(Transformer model, IReadOnlyList<int> prompt, GenerationOptions options, Random rng, Action<int>? onToken = null)
    {
        int capacity = Capacity(model.Config, prompt, options);
        using var cache = model.CreateCache(1, Math.Max(capacity, 1));
        // One logits buffer for every step: a fresh [V] array per token (200 KB for GPT-2) went to the large-object
        // heap and paid its page faults on each step.
        var logits = new float[model.Config.VocabSize];
        var last = new ForwardOptions { Logits = LogitsMode.Last, OnLogits = (_, _, row) => row.CopyTo(logits) };
        return Decode(model.Config, prompt, options, rng, ids => { model.Forward(TokenBatch.Single(ids), cache, last); return logits; },
                      () => cache.Length >= cache.Capacity, onToken);
    }

    /// <summary>The same decoding through ONNX Runtime: the exported graph and its KV cache (<see cref="Backends.Ort.OrtDecoder"/>).</summary>
    public static int[] Generate(Backends.Ort.OrtDecoder decoder, ModelConfig config, IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? onToken = null)
    {
        int capacity = Capacity(config, prompt, options);
        using var cache = decoder.CreateCache();
        int V = config.VocabSize;
        return Decode(config, prompt, options, new Random(options.Seed), ids => decoder.Forward(ids, cache).AsSpan((ids.Count - 1) * V, V).ToArray(),
                      () => cache.Length >= capacity, onToken);
    }

    /// <summary>Tokens the prompt and the new tokens need, checked against the model's positions.</summary>
    static int Capacity(ModelConfig config, IReadOnlyList<int> prompt, GenerationOptions options)
    {
        if (prompt.Count == 0) throw new KeditException("generation needs a non-empty prompt (a tokenizer without BOS gives no tokens for empty text)");
        if (options.MaxNewTokens < 0) throw new KeditException("max-new-tokens must be ≥ 0");
        if (!(options.Temperature >= 0 && float.IsFinite(options.Temperature))) throw new KeditException($"temperature must be a finite number ≥ 0, got {options.Temperature}");
        if (options.TopK < 0) throw new KeditException($"top-k must be ≥ 0, got {options.TopK}");
        // The cache is allocated up front: never beyond the positions the model has.
        int limit = config.MaxPositions;
        int capacity = (int)Math.Min((long)prompt.Count + options.MaxNewTokens, limit);
        if (prompt.Count > capacity) throw new KeditException($"prompt of {prompt.Count} tokens exceeds the model's {limit} positions");
        return capacity;
    }

    /// <summary>The prompt in one step, then one token per step; <paramref name="step"/> returns the last position's logits.</summary>
    static int[] Decode(ModelConfig config, IReadOnlyList<int> prompt, GenerationOptions options, Random rng, Func<IReadOnlyList<int>, float[]> step, Func<bool> full, Action<int>? onToken)
    {
        var stop = options.StopTokens ?? (config.EosTokenId is int eos ? new HashSet<int> { eos } : new HashSet<int>());
        var output = new List<int>();
        var logits = step(prompt);
        while (output.Count < options.MaxNewTokens)
        {
            int next = options.Temperature == 0 ? ArgMax(logits) : Sample(logits, options.Temperature, options.TopK, rng);
            if (stop.Contains(next)) break;
            output.Add(next);
            onToken?.Invoke(next);
            if (output.Count == options.MaxNewTokens || full()) break;
            logits = step(new[] { next });
        }
        return output.ToArray();
    }

    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    static int Sample(ReadOnlySpan<float> logits, float temperature, int topK, Random rng)
    {
        var p = new double[logits.Length];
        double max = double.NegativeInfinity;
        for (int i = 0; i < p.Length; i++) max = Math.Max(max, logits[i]);
        double cut = double.NegativeInfinity;
        if (topK > 0 && topK < logits.Length)
        {
            var sorted = logits.ToArray();
            Array.Sort(sorted);
            cut = sorted[^topK];
        }
        double sum = 0;
        for (int i = 0; i < p.Length; i++) { p[i] = logits[i] < cut ? 0 : Math.Exp((logits[i] - max) / temperature); sum += p[i]; }
        double u = rng.NextDouble() * sum, acc = 0;
        for (int i = 0; i < p.Length; i++) { acc += p[i]; if (u < acc) return i; }
        return ArgMax(logits);
    }
}
