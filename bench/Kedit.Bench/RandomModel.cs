using Kedit.IO;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>GPT-2-architecture models with seeded random weights, built in memory for benchmarks.</summary>
public static class RandomModel
{
    /// <summary>
    /// GPT-2 small's shape by default: 12 layers, 768 wide, 3072 MLP, 50257 tokens, 1024 positions. With
    /// <paramref name="resident"/> the matrices are held 16-bit (as a BF16/F16 checkpoint loads), rounded from the same values.
    /// </summary>
    public static Transformer Gpt2(int layers = 12, int d = 768, int vocab = 50257, int positions = 1024, int seed = 1, HalfFormat? resident = null)
    {
        var c = new ModelConfig
        {
            ModelType = "gpt2", Architecture = Architecture.Gpt2, VocabSize = vocab, Hidden = d, Layers = layers, Heads = d / 64, KvHeads = d / 64,
            HeadDim = 64, Intermediate = 4 * d, MaxPositions = positions, NormEps = 1e-5f, Activation = Activation.GeluNew,
            TieWordEmbeddings = true, AttentionBias = true, MlpBias = true,
        };
        int s = seed;
        WeightMatrix M(float[] v) => resident is { } f ? new WeightMatrix(ToHalf(v, f), f) : new WeightMatrix(v);
        var wte = M(Rand((long)vocab * d, s++, 0.02f));
        var layerWeights = new LayerWeights[layers];
        int f = 4 * d;
        for (int i = 0; i < layers; i++)
            layerWeights[i] = new LayerWeights
            {
                Norm1Gamma = Ones(d), Norm1Beta = new float[d], Norm2Gamma = Ones(d), Norm2Beta = new float[d],
                Qkv = new Linear($"transformer.h.{i}.attn.c_attn.weight", M(Rand((long)d * 3 * d, s++, 0.02f)), new float[3 * d], d, 3 * d, true),
                AttnOut = new Linear($"transformer.h.{i}.attn.c_proj.weight", M(Rand((long)d * d, s++, 0.02f)), new float[d], d, d, true),
                MlpIn = new Linear($"transformer.h.{i}.mlp.c_fc.weight", M(Rand((long)d * f, s++, 0.02f)), new float[f], d, f, true),
                MlpOut = new Linear($"transformer.h.{i}.mlp.c_proj.weight", M(Rand((long)f * d, s++, 0.02f)), new float[d], f, d, true),
            };
        var weights = new ModelWeights
        {
            TokenTable = wte, PositionEmbedding = Rand((long)positions * d, s++, 0.01f), Layers = layerWeights,
            FinalNormGamma = Ones(d), FinalNormBeta = new float[d], LmHead = new Linear("lm_head.weight", wte, null, d, vocab, false),
            StoredDTypes = new Dictionary<string, DType>(), ParameterCount = (long)vocab * d + (long)positions * d + layers * (12L * d * d),
        };
        return new Transformer(c, weights);
    }

    public static float[] Rand(long n, int seed, float scale)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)((r.NextDouble() * 2 - 1) * scale * 1.7320508);
        return a;
    }

    static ushort[] ToHalf(float[] v, HalfFormat format) => v.Select(x => format == HalfFormat.BFloat16
        ? (ushort)((BitConverter.SingleToUInt32Bits(x) + 0x7FFF + ((BitConverter.SingleToUInt32Bits(x) >> 16) & 1)) >> 16) // round to nearest even
        : BitConverter.HalfToUInt16Bits((Half)x)).ToArray();

    static float[] Ones(int n) => Enumerable.Repeat(1f, n).ToArray();
}
