using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.IO;

public class SafetensorsWriterTests
{
    static byte[] RandomBytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    [Fact]
    public void EveryDtypeAndMetadataRoundTrip()
    {
        var rng = new Random(7);
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (DType t in Enum.GetValues<DType>())
        {
            // Odd element counts put later tensors at unaligned offsets, which readers must handle.
            long[] shape = [3, 7];
            entries.Add(new SafetensorsWriter.Entry("t." + DTypes.ToSafetensorsName(t), t, shape, RandomBytes(rng, 21 * DTypes.SizeOf(t))));
        }
        entries.Add(new SafetensorsWriter.Entry("scalar", DType.F32, [], BitConverter.GetBytes(2.5f)));
        entries.Add(new SafetensorsWriter.Entry("empty", DType.F16, [4, 0], ReadOnlyMemory<byte>.Empty));
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["kedit.edit"] = "{\"json\": \"inside\"}", ["ünïcode"] = "✓" };

        using var dir = new TempDir();
        string path = dir.File("all.safetensors");
        SafetensorsWriter.Write(path, Enumerable.Reverse(entries), metadata);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal(metadata.OrderBy(kv => kv.Key), f.Metadata.OrderBy(kv => kv.Key));
        Assert.Equal(entries.Count, f.Tensors.Count);
        foreach (var e in entries)
        {
            TensorInfo info = f.GetInfo(e.Name);
            Assert.Equal(e.DType, info.DType);
            Assert.Equal(e.Shape, info.Shape);
            Assert.True(e.Data.Span.SequenceEqual(f.GetBytes(e.Name)), e.Name);
            Assert.EndsWith("all.safetensors", info.File);
        }
        Assert.Equal(2.5f, f.ReadFloat32("scalar").Single());
        Assert.Empty(f.ReadFloat32("empty"));

        // Widening reads agree with reading the raw bytes by hand.
        byte[] i32 = entries.Single(e => e.DType == DType.I32).Data.ToArray();
        Assert.Equal(Enumerable.Range(0, 21).Select(i => (long)BitConverter.ToInt32(i32, 4 * i)), f.ReadInt64("t.I32"));
        byte[] i16 = entries.Single(e => e.DType == DType.I16).Data.ToArray();
        Assert.Equal(Enumerable.Range(0, 21).Select(i => (long)BitConverter.ToInt16(i16, 2 * i)), f.ReadInt64("t.I16"));
        byte[] i8 = entries.Single(e => e.DType == DType.I8).Data.ToArray();
        Assert.Equal(i8.Select(b => (long)(sbyte)b), f.ReadInt64("t.I8"));
        byte[] u8 = entries.Single(e => e.DType == DType.U8).Data.ToArray();
        Assert.Equal(u8.Select(b => (long)b), f.ReadInt64("t.U8"));
        byte[] bools = entries.Single(e => e.DType == DType.Bool).Data.ToArray();
        Assert.Equal(bools.Select(b => b != 0 ? 1L : 0L), f.ReadInt64("t.BOOL"));
    }

    [Fact]
    public void FileLayoutFollowsTheFormat()
    {
        using var dir = new TempDir();
        string path = dir.File("layout.safetensors");
        SafetensorsWriter.Write(path, [
            SafetensorsWriter.Entry.F32("zeta", [2], [1, 2]),
            SafetensorsWriter.Entry.Converted("alpha", DType.F16, [3], new float[] { 1, 2, 3 }),
            SafetensorsWriter.Entry.I64("mid", [1], [5]),
        ]);
        byte[] bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        Assert.EndsWith("}", header.TrimEnd(' ')); // padding is spaces only
        using var doc = JsonDocument.Parse(header);
        Assert.False(doc.RootElement.TryGetProperty("__metadata__", out _));
        // Sorted by name, back to back from offset 0, ending at the end of the file.
        Assert.Equal(new[] { "alpha", "mid", "zeta" }, doc.RootElement.EnumerateObject().Select(p => p.Name));
        long[] Offsets(string name) => doc.RootElement.GetProperty(name).GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        Assert.Equal(new long[] { 0, 6 }, Offsets("alpha"));
        Assert.Equal(new long[] { 6, 14 }, Offsets("mid"));
        Assert.Equal(new long[] { 14, 22 }, Offsets("zeta"));
        Assert.Equal(8 + n + 22, bytes.Length);
        Assert.Equal(2f, BitConverter.ToSingle(bytes, (int)(8 + n + 14 + 4)));
    }

    [Fact]
    public void TypedFactoriesRoundTripExactly()
    {
        var rng = new Random(3);
        float[] f32 = Enumerable.Range(0, 101).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        double[] f64 = Enumerable.Range(0, 33).Select(_ => rng.NextDouble() * 1e10 - 5e9).ToArray();
        long[] i64 = Enumerable.Range(0, 9).Select(_ => rng.NextInt64(long.MinValue, long.MaxValue)).ToArray();
        using var dir = new TempDir();
        string path = dir.File("typed.safetensors");
        SafetensorsWriter.Write(path, [
            SafetensorsWriter.Entry.F32("f32", [101], f32),
            SafetensorsWriter.Entry.F64("f64", [3, 11], f64),
            SafetensorsWriter.Entry.I64("i64", [9], i64),
            SafetensorsWriter.Entry.Converted("f32c", DType.F32, [101], f32),
            SafetensorsWriter.Entry.Converted("f64c", DType.F64, [101], f32),
        ]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(f32, f.ReadFloat32("f32"));
        Assert.Equal(f32, f.ReadFloat32("f32c"));
        Assert.Equal(f32.Select(x => (double)x), f.ReadFloat64("f32"));
        Assert.Equal(f32.Select(x => (double)x), f.ReadFloat64("f64c"));
        Assert.Equal(f64, f.ReadFloat64("f64"));
        Assert.Equal(f64.Select(x => (float)x), f.ReadFloat32("f64"));
        Assert.Equal(i64, f.ReadInt64("i64"));
        var into = new long[9];
        f.ReadInt64("i64", into);
        Assert.Equal(i64, into);
        var into64 = new double[33];
        f.ReadFloat64("f64", into64);
        Assert.Equal(f64, into64);
    }

    public static IEnumerable<object[]> HalfTargets() => [[DType.F16], [DType.BF16]];

    [Theory]
    [MemberData(nameof(HalfTargets))]
    public void ConvertedRoundsToNearestEven(DType target)
    {
        Func<float, double> round = target == DType.BF16 ? IoTestHelpers.RoundToBf16 : IoTestHelpers.RoundToF16;
        var values = new List<float> { 0f, -0f, 1f, -1f, 1e-3f, 3.14159265f, -2.71828f, 1e-7f, 6e-8f, 1e-30f };
        // Exact ties between two representable values: both directions of "to even".
        int bits = target == DType.BF16 ? 7 : 10;
        foreach (int k in new[] { 0, 1, 2, 3 })
        {
            double ulp = Math.ScaleB(1.0, -bits);
            values.Add((float)(1 + (k + 0.5) * ulp));
            values.Add((float)-(4 * (1 + (k + 0.5) * ulp)));
        }
        var rng = new Random(11);
        for (int i = 0; i < 300; i++) values.Add((float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-12, 12))));
        float[] data = values.ToArray(); // an odd count exercises the scalar tail after the vector loop
        if (data.Length % 2 == 0) data = data[..^1];

        using var dir = new TempDir();
        string path = dir.File("rounded.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.Converted("x", target, [data.Length], data)]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(target, f.GetInfo("x").DType);
        float[] back = f.ReadFloat32("x");
        for (int i = 0; i < data.Length; i++)
            if (round(data[i]) != back[i])
                Assert.Fail($"{target}: {data[i]:R} should round to {round(data[i]):R}, got {back[i]:R}");
        // The ties went both ways, so rounding is not truncation or round-half-up.
        Assert.Contains(data.Zip(back), p => p.Second > p.First);
        Assert.Contains(data.Zip(back), p => p.Second < p.First && p.First > 0);
    }

    [Theory]
    [MemberData(nameof(HalfTargets))]
    public void ConvertedKeepsSpecialValues(DType target)
    {
        float[] data = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 1e30f];
        using var dir = new TempDir();
        string path = dir.File("special.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.Converted("x", target, [5], data)]);
        using var f = SafetensorsFile.Open(path);
        float[] back = f.ReadFloat32("x");
        Assert.True(float.IsNaN(back[0]));
        Assert.Equal(float.PositiveInfinity, back[1]);
        Assert.Equal(float.NegativeInfinity, back[2]);
        Assert.True(back[3] == 0 && float.IsNegative(back[3]));
        // 1e30 overflows F16 to infinity; BF16 has float's range.
        Assert.Equal(target == DType.F16 ? float.PositiveInfinity : (float)IoTestHelpers.RoundToBf16(1e30f), back[4]);
    }

    [Fact]
    public void BadEntriesAreKeditExceptions()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        void Fails(string fragment, params SafetensorsWriter.Entry[] entries)
        {
            var e = Assert.Throws<KeditException>(() => SafetensorsWriter.Write(path, entries));
            Assert.Contains(fragment, e.Message);
            Assert.False(File.Exists(path));
        }
        Fails("'x'", new SafetensorsWriter.Entry("x", DType.F32, [3], new byte[8]));
        Fails("twice", SafetensorsWriter.Entry.F32("x", [1], [1]), SafetensorsWriter.Entry.F32("x", [1], [2]));
        Fails("reserved", SafetensorsWriter.Entry.F32("__metadata__", [1], [1]));
        Fails("empty name", SafetensorsWriter.Entry.F32("", [1], [1]));
        Fails("negative", new SafetensorsWriter.Entry("x", DType.F32, [-1], ReadOnlyMemory<byte>.Empty));
        Fails("not valid text", SafetensorsWriter.Entry.F32("bad\ud800name", [1], [1]));
        Assert.Throws<KeditException>(() => SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("x", [1], [1])],
            new Dictionary<string, string> { ["k"] = "\udc00" }));
        Assert.Throws<KeditException>(() => SafetensorsWriter.Entry.F32("x", [2, 2], [1, 2, 3]));
        Assert.Throws<KeditException>(() => SafetensorsWriter.Entry.Converted("x", DType.I32, [1], [1f]));
        Assert.Throws<KeditException>(() => SafetensorsWriter.Write(dir.File("no/such/dir/x.safetensors"), [SafetensorsWriter.Entry.F32("x", [1], [1])]));
    }

    [Fact]
    public void ReadErrorsNameTensorAndFile()
    {
        using var dir = new TempDir();
        string path = dir.File("r.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("w", [2], [1, 2]), SafetensorsWriter.Entry.I64("ids", [1], [3])]);
        using var f = SafetensorsFile.Open(path);
        void Fails(Action a, params string[] fragments)
        {
            var e = Assert.Throws<KeditException>(a);
            Assert.Contains("r.safetensors", e.Message);
            foreach (var s in fragments) Assert.Contains(s, e.Message);
        }
        Fails(() => f.GetInfo("missing"), "'missing'");
        Fails(() => f.GetBytes("missing"), "'missing'");
        Fails(() => f.ReadInt64("w"), "'w'", "F32");
        Fails(() => f.ReadFloat32("ids"), "'ids'", "I64");
        Fails(() => f.ReadFloat64("ids"), "'ids'", "I64");
        Fails(() => f.ReadFloat32("w", new float[3]), "'w'", "2 elements");
        Assert.False(f.TryGetInfo("missing", out _));
        Assert.True(f.TryGetInfo("w", out var info) && info.Name == "w");
    }

    /// <summary>Bytes whose first access succeeds (to build the Memory) and later ones fail like a bad disk.</summary>
    sealed class FailingMemory(int length) : MemoryManager<byte>
    {
        readonly byte[] _bytes = new byte[length];
        int _calls;
        public override Span<byte> GetSpan() =>
            ++_calls == 1 ? _bytes : throw new IOException("simulated device error");
        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }

    static void AssertOnlyFile(TempDir dir, string path, byte[] expected)
    {
        Assert.Equal(new[] { Path.GetFileName(path) }, Directory.GetFiles(dir.Path).Select(Path.GetFileName));
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void FailedWriteLeavesPreviousFileAndNoTemporaries()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("a", [2], [1, 2])], new Dictionary<string, string> { ["v"] = "1" });
        byte[] before = File.ReadAllBytes(path);

        // Data length does not match the shape: refused.
        var bad = new SafetensorsWriter.Entry("b", DType.F32, [4], new byte[12]);
        var e = Assert.Throws<KeditException>(() => SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("a", [2], [3, 4]), bad]));
        Assert.Contains("'b'", e.Message);
        AssertOnlyFile(dir, path, before);

        // The device fails after the header and the first tensor are in the temporary file.
        var failing = new SafetensorsWriter.Entry("z", DType.F32, [4], new FailingMemory(16).Memory);
        e = Assert.Throws<KeditException>(() => SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("a", [2], [3, 4]), failing]));
        Assert.Contains("model.safetensors", e.Message);
        Assert.IsType<IOException>(e.InnerException);
        AssertOnlyFile(dir, path, before);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal([1f, 2f], f.ReadFloat32("a"));
        Assert.Equal("1", f.Metadata["v"]);
    }

    [Fact]
    public void WriteReplacesAnExistingFileEvenWhileItIsOpen()
    {
        using var dir = new TempDir();
        string path = dir.File("m.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("a", [2], [1, 2])]);
        using (var old = SafetensorsFile.Open(path))
        {
            SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.F32("a", [3], [5, 6, 7])]);
            Assert.Equal([1f, 2f], old.ReadFloat32("a")); // the open mapping still sees the old file
        }
        using var f = SafetensorsFile.Open(path);
        Assert.Equal([5f, 6f, 7f], f.ReadFloat32("a"));
        Assert.Single(Directory.GetFiles(dir.Path));
    }
}
