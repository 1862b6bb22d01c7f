using System.Buffers.Binary;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.IO;

/// <summary>Malformed files: every one is a KeditException naming the file, never another exception.</summary>
public class SafetensorsValidationTests
{
    static KeditException OpenFails(byte[] bytes, string fileName = "broken.safetensors")
    {
        using var dir = new TempDir();
        string path = dir.File(fileName);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<KeditException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(fileName, e.Message);
        return e;
    }

    const string A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    [Theory]
    // name, header, data bytes, fragments the message must contain (besides the file name)
    [InlineData("bad JSON", "{\"a\":{\"dtype\":\"F32\",", 8, "not valid JSON")]
    [InlineData("not an object", "[1, 2]", 0, "does not start with '{'")]
    [InlineData("top level not an object", "{\"a\":1} [", 0, "not valid JSON")]
    [InlineData("entry not an object", "{\"a\":[1]}", 0, "'a'")]
    [InlineData("overlapping spans", "{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "'b'|overlaps|'a'")]
    [InlineData("span beyond data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "'a'|beyond the data section")]
    [InlineData("dtype size vs span", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'a'|needs 12 bytes")]
    [InlineData("F64 read as 4-byte", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'|F64")]
    [InlineData("unsupported dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "'a'|F8_E4M3 is not supported")]
    [InlineData("unknown dtype", "{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "'a'|unknown dtype|Q4_K")]
    [InlineData("lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype|f32")]
    [InlineData("duplicate name", "{" + A + "," + A + "}", 8, "'a'|twice")]
    [InlineData("duplicate field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'|\"dtype\" twice")]
    [InlineData("missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'|no \"dtype\"")]
    [InlineData("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "'a'|no \"shape\"")]
    [InlineData("missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'a'|no \"data_offsets\"")]
    [InlineData("dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'|dtype")]
    [InlineData("shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "'a'|shape")]
    [InlineData("shape of strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "'a'|shape")]
    [InlineData("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "'a'|negative")]
    [InlineData("fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "'a'|2.5")]
    [InlineData("dim beyond 64 bits", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, "'a'|not an integer in range")]
    [InlineData("shape overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "'a'|overflows")]
    [InlineData("one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, "'a'|data_offsets")]
    [InlineData("begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "'a'|begin > end")]
    [InlineData("negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "'a'|negative")]
    [InlineData("hole between tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a'|holes")]
    [InlineData("trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "trailing")]
    [InlineData("metadata not an object", "{\"__metadata__\":\"x\"," + A + "}", 8, "__metadata__")]
    [InlineData("metadata value not a string", "{\"__metadata__\":{\"format\":1}," + A + "}", 8, "__metadata__|format")]
    [InlineData("metadata nested", "{\"__metadata__\":{\"format\":{\"x\":\"y\"}}," + A + "}", 8, "__metadata__|format")]
    [InlineData("lone surrogate in name", "{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid text")]
    [InlineData("lone surrogate in dtype", "{\"a\":{\"dtype\":\"F\\udc00\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid text")]
    [InlineData("lone surrogate in metadata", "{\"__metadata__\":{\"k\":\"\\ud800x\"}," + A + "}", 8, "not valid text")]
    [InlineData("deep nesting", "{\"a\":" + "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" + "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" + "}", 0, "not valid JSON")]
    [InlineData("empty tensor name", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "empty name")]
    public void MalformedHeaderIsRejected(string what, string header, int dataBytes, string fragments)
    {
        _ = what;
        KeditException e = OpenFails(IoTestHelpers.RawFile(header, dataBytes));
        foreach (string fragment in fragments.Split('|'))
            Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void ValidHandMadeFileOpens()
    {
        // The positive control for the cases above: scalars, empty tensors and metadata are fine.
        string header = "{\"__metadata__\":{\"k\":\"v\"},\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}," +
                        "\"e\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[4,4]}," + A.Replace("[0,8]", "[4,12]") + "}  ";
        using var dir = new TempDir();
        string path = dir.File("ok.safetensors");
        File.WriteAllBytes(path, IoTestHelpers.RawFile(header, 12));
        using var f = SafetensorsFile.Open(path);
        Assert.Equal("v", f.Metadata["k"]);
        Assert.Equal(new[] { "s", "e", "a" }, f.Tensors.Select(t => t.Name));
        Assert.Equal(1, f.GetInfo("s").ElementCount);
        Assert.Empty(f.ReadInt64("e"));
        Assert.Equal(2, f.ReadFloat32("a").Length);
    }

    [Fact]
    public void TooShortFileIsRejected()
    {
        Assert.Contains("shorter than the 8-byte", OpenFails(new byte[5]).Message);
        Assert.Contains("shorter than the 8-byte", OpenFails([]).Message);
    }

    [Fact]
    public void HeaderLengthZeroIsRejected() =>
        Assert.Contains("header length is 0", OpenFails(IoTestHelpers.RawFile("{}", 0, declaredHeaderLength: 0)).Message);

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    public void HugeHeaderLengthIsRejected(ulong declared) =>
        Assert.Contains("limit", OpenFails(IoTestHelpers.RawFile("{}", 0, declared)).Message);

    [Fact]
    public void HeaderLengthBeyondFileIsRejected() =>
        Assert.Contains("exceeds the 2 bytes", OpenFails(IoTestHelpers.RawFile("{}", 0, declaredHeaderLength: 500)).Message);

    [Fact]
    public void InvalidUtf8HeaderIsRejected()
    {
        byte[] bytes = IoTestHelpers.RawFile("{\"a?\":{}}", 0);
        bytes[8 + 3] = 0xFF;
        Assert.Contains("UTF-8", OpenFails(bytes).Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.999)]
    [InlineData(0.01)]
    public void TruncatedFixtureIsRejected(double keep)
    {
        byte[] full = File.ReadAllBytes(TestPaths.Fixture("gpt2", "model.safetensors"));
        OpenFails(full.AsSpan(0, (int)(full.Length * keep)).ToArray(), "model.safetensors");
    }

    [Fact]
    public void MissingFileAndDirectoryAreKeditExceptions()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<KeditException>(() => SafetensorsFile.Open(dir.File("nope.safetensors")));
        Assert.Contains("nope.safetensors", e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Throws<KeditException>(() => SafetensorsFile.Open(dir.Path));
    }

    [Fact]
    public void RandomHeaderCorruptionOnlyEverGivesKeditException()
    {
        using var dir = new TempDir();
        string good = dir.File("good.safetensors");
        SafetensorsWriter.Write(good, [
            SafetensorsWriter.Entry.F32("w", [3, 5], Enumerable.Range(0, 15).Select(i => i * 0.5f).ToArray()),
            SafetensorsWriter.Entry.Converted("h", DType.BF16, [7], new float[] { 1, 2, 3, 4, 5, 6, 7 }),
            SafetensorsWriter.Entry.Converted("g", DType.F16, [2, 2], new float[] { 1, -2, 3, -4 }),
            SafetensorsWriter.Entry.I64("ids", [4], [1, 2, 3, 4]),
            SafetensorsWriter.Entry.F64("d", [2], [0.25, 1e300]),
            new SafetensorsWriter.Entry("m", DType.I32, [2], new byte[8]),
            new SafetensorsWriter.Entry("b", DType.Bool, [3], new byte[] { 0, 1, 1 }),
            new SafetensorsWriter.Entry("empty", DType.F32, [0, 4], ReadOnlyMemory<byte>.Empty),
        ], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "fuzz" });
        byte[] original = File.ReadAllBytes(good);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        const string jsonish = "{}[]\":,0123456789-.eE \\tnul";

        var rng = new Random(20240607);
        int opened = 0, rejected = 0;
        string path = dir.File("fuzzed.safetensors");
        for (int iteration = 0; iteration < 500; iteration++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = rng.Next(1, 4);
            for (int k = 0; k < flips; k++)
            {
                // Mostly inside the JSON, sometimes in the length prefix.
                int at = rng.Next(10) == 0 ? rng.Next(8) : rng.Next(8, headerEnd);
                switch (iteration % 3)
                {
                    case 0: bytes[at] ^= (byte)rng.Next(1, 256); break;                      // random bits
                    case 1: bytes[at] = (byte)jsonish[rng.Next(jsonish.Length)]; break;     // JSON syntax
                    default:                                                                 // a number changes: shapes and offsets disagree
                        int digit = Array.FindIndex(bytes, at, headerEnd - at, b => b is >= (byte)'0' and <= (byte)'9');
                        if (digit >= 0) bytes[digit] = (byte)('0' + rng.Next(10));
                        break;
                }
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using var f = SafetensorsFile.Open(path);
                opened++;
                foreach (TensorInfo t in f.Tensors)
                {
                    // Whatever validated must also read without going out of bounds.
                    Assert.Equal(t.ByteLength, f.GetBytes(t.Name).Length);
                    if (DTypes.IsFloat(t.DType)) Assert.Equal(t.ElementCount, f.ReadFloat32(t.Name).Length);
                    else Assert.Equal(t.ElementCount, f.ReadInt64(t.Name).Length);
                }
            }
            catch (KeditException e)
            {
                rejected++;
                Assert.Contains("fuzzed.safetensors", e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration}: {e.GetType().Name} instead of KeditException: {e.Message}");
            }
        }
        Assert.True(rejected > 200, $"only {rejected} of 500 corruptions were rejected");
        Assert.True(opened > 0, "no corruption was harmless; the test should also exercise successful opens");
    }
}
