using System.Text.Json;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.IO;

/// <summary>Reading the committed fixtures: F32 weights, their F16/BF16 copies, F64/I64 goldens.</summary>
public class SafetensorsFixtureTests
{
    static string Gpt2(string dir = "gpt2", string file = "model.safetensors") => TestPaths.Fixture(dir, file);

    [Fact]
    public void Gpt2WeightsHaveTheDocumentedShapes()
    {
        using var f = SafetensorsFile.Open(Gpt2());
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.All(f.Tensors, t => Assert.Equal(DType.F32, t.DType));
        Assert.Equal(new long[] { 300, 64 }, f.GetInfo("transformer.wte.weight").Shape);
        Assert.Equal(new long[] { 128, 64 }, f.GetInfo("transformer.wpe.weight").Shape);
        Assert.Equal(new long[] { 64, 192 }, f.GetInfo("transformer.h.0.attn.c_attn.weight").Shape);
        Assert.Equal(new long[] { 256, 64 }, f.GetInfo("transformer.h.3.mlp.c_proj.weight").Shape);
        Assert.Equal(64 * 192, f.GetInfo("transformer.h.0.attn.c_attn.weight").ElementCount);

        // Tensors come in data order and tile the data section: each starts where the previous ends.
        long dataStart = 8 + f.HeaderLength;
        Assert.Equal(dataStart, f.Tensors[0].Offset);
        for (int i = 1; i < f.Tensors.Count; i++)
            Assert.Equal(f.Tensors[i - 1].Offset + f.Tensors[i - 1].ByteLength, f.Tensors[i].Offset);
        Assert.Equal(new FileInfo(Gpt2()).Length, f.Tensors[^1].Offset + f.Tensors[^1].ByteLength);
    }

    [Fact]
    public void F32BytesAreTheFileBytesAtTheOffset()
    {
        byte[] raw = File.ReadAllBytes(Gpt2());
        using var f = SafetensorsFile.Open(Gpt2());
        TensorInfo info = f.GetInfo("transformer.ln_f.weight");
        Assert.True(raw.AsSpan((int)info.Offset, (int)info.ByteLength).SequenceEqual(f.GetBytes(info.Name)));
        float[] values = f.ReadFloat32(info.Name);
        for (int i = 0; i < values.Length; i++)
            Assert.Equal(BitConverter.ToSingle(raw, (int)info.Offset + 4 * i), values[i]);
    }

    [Theory]
    [InlineData("gpt2_bf16", DType.BF16)]
    [InlineData("gpt2_f16", DType.F16)]
    public void HalfPrecisionCopiesWidenToTheRoundedF32Weights(string dir, DType dtype)
    {
        using var f32 = SafetensorsFile.Open(Gpt2());
        using var half = SafetensorsFile.Open(Gpt2(dir));
        Assert.Equal(f32.Tensors.Select(t => t.Name).Order(), half.Tensors.Select(t => t.Name).Order());
        Func<float, double> round = dtype == DType.BF16 ? IoTestHelpers.RoundToBf16 : IoTestHelpers.RoundToF16;
        int changed = 0;
        foreach (TensorInfo t in f32.Tensors)
        {
            TensorInfo h = half.GetInfo(t.Name);
            Assert.Equal(dtype, h.DType);
            Assert.Equal(t.Shape, h.Shape);
            Assert.Equal(2 * t.ElementCount, h.ByteLength);
            float[] original = f32.ReadFloat32(t.Name);
            float[] widened = half.ReadFloat32(t.Name);
            double[] widened64 = half.ReadFloat64(t.Name);
            var into = new float[original.Length];
            half.ReadFloat32(t.Name, into);
            for (int i = 0; i < original.Length; i++)
            {
                double expected = round(original[i]);
                if (expected != widened[i])
                    Assert.Fail($"{dir} {t.Name}[{i}]: F32 {original[i]:R} should round to {expected:R}, read {widened[i]:R}");
                Assert.Equal(expected, widened64[i]);
                Assert.Equal(widened[i], into[i]);
                if (widened[i] != original[i]) changed++;
            }
        }
        Assert.True(changed > 1000, "the copies really are rounded"); // guards against comparing a file with itself
    }

    [Fact]
    public void GoldenForwardIdsMatchEditInputs()
    {
        using var g = SafetensorsFile.Open(Gpt2(file: "golden_forward.safetensors"));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Gpt2(file: "edit_inputs.json")));
        var sequences = doc.RootElement.GetProperty("forward_sequences").GetProperty("ids").EnumerateArray()
            .Select(s => s.EnumerateArray().Select(x => x.GetInt64()).ToArray()).ToArray();
        Assert.Equal(3, sequences.Length);

        long[] right = g.ReadInt64("batch_right.ids"), rightMask = g.ReadInt64("batch_right.mask");
        long[] left = g.ReadInt64("batch_left.ids"), leftMask = g.ReadInt64("batch_left.mask");
        long tmax = g.GetInfo("batch_right.ids").Shape[1];
        Assert.Equal(DType.I64, g.GetInfo("batch_right.ids").DType);
        for (int s = 0; s < 3; s++)
        {
            TensorInfo info = g.GetInfo($"seq{s}.ids");
            Assert.Equal(DType.I64, info.DType);
            Assert.Equal(sequences[s], g.ReadInt64(info.Name));
            int len = sequences[s].Length;
            for (int t = 0; t < tmax; t++)
            {
                // Right padding puts the sequence first, left padding last; pads are id 0, mask 0.
                Assert.Equal(t < len ? sequences[s][t] : 0, right[s * tmax + t]);
                Assert.Equal(t < len ? 1 : 0, rightMask[s * tmax + t]);
                long lt = t - (tmax - len);
                Assert.Equal(lt >= 0 ? sequences[s][lt] : 0, left[s * tmax + t]);
                Assert.Equal(lt >= 0 ? 1 : 0, leftMask[s * tmax + t]);
            }
        }
    }

    [Fact]
    public void GoldenEmbeddingsAreWteplusWpeInFloat64()
    {
        // hidden.0 of GPT-2 is wte[id] + wpe[pos], computed by the reference in float64 from the
        // widened F32 weights: an independent check that F64 data and F32 weights read correctly.
        using var model = SafetensorsFile.Open(Gpt2());
        using var g = SafetensorsFile.Open(Gpt2(file: "golden_forward.safetensors"));
        double[] wte = model.ReadFloat64("transformer.wte.weight");
        double[] wpe = model.ReadFloat64("transformer.wpe.weight");
        for (int s = 0; s < 3; s++)
        {
            long[] ids = g.ReadInt64($"seq{s}.ids");
            TensorInfo h0 = g.GetInfo($"seq{s}.hidden.0");
            Assert.Equal(DType.F64, h0.DType);
            Assert.Equal(new long[] { ids.Length, 64 }, h0.Shape);
            double[] hidden = g.ReadFloat64(h0.Name);
            float[] hidden32 = g.ReadFloat32(h0.Name);
            for (int t = 0; t < ids.Length; t++)
                for (int j = 0; j < 64; j++)
                {
                    double expected = wte[ids[t] * 64 + j] + wpe[t * 64 + j];
                    Assert.Equal(expected, hidden[t * 64 + j], 1e-12);
                    Assert.Equal((float)hidden[t * 64 + j], hidden32[t * 64 + j]); // F64 → F32 rounds like a cast
                }
        }
    }
}
