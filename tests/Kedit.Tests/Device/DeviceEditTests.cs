using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>`kedit edit --device opencl` (forward passes and compute_z's backward tape on the device) reproduces the CPU edit.</summary>
public class DeviceEditTests
{
    [SkippableTheory]
    [InlineData("gpt2", "transformer.h.{0}.mlp.c_proj.weight")]
    [InlineData("llama", "model.layers.{0}.mlp.down_proj.weight")]
    [InlineData("gptj", "transformer.h.{0}.mlp.fc_out.weight")]
    public void MemitEditOnOpenClMatchesTheCpu(string name, string weight)
    {
        OpenClFixture.Require();
        string tmp = Directory.CreateTempSubdirectory("kedit-dev-edit-").FullName;
        string data = Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit");
        string model = TestPaths.Fixture(name);
        // The gpt2 fixtures' requests and hparams fit every fixture model (same tokenizer, 4 layers).
        string stats = Path.Combine(tmp, "stats.safetensors");
        Assert.Equal(0, Cli.Cli.Run(new[] { "stats", "--model", model, "--layers", "1,2", "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", stats }, TextWriter.Null, TextWriter.Null));
        foreach (var device in new[] { "cpu", "opencl" })
        {
            var err = new StringWriter();
            int code = Cli.Cli.Run(new[] { "edit", "--device", device, "--model", model, "--method", "memit", "--hparams", Path.Combine(data, "memit.json"),
                "--requests", Path.Combine(data, "requests.json"), "--stats", stats, "--out", Path.Combine(tmp, device) }, TextWriter.Null, err);
            Assert.True(code == 0, err.ToString());
        }
        using var cpu = SafetensorsFile.Open(Path.Combine(tmp, "cpu", "deltas.safetensors"));
        using var ocl = SafetensorsFile.Open(Path.Combine(tmp, "opencl", "deltas.safetensors"));
        foreach (int l in new[] { 1, 2 })
        {
            string n = string.Format(weight, l);
            Compare.Close($"{name} {n}", ocl.ReadFloat32(n), cpu.ReadFloat64(n), 1e-3);
        }
        Directory.Delete(tmp, true);
    }
}
