using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;

namespace Kedit.Tests.Docs;

/// <summary>The README's C# example compiles against the engine as built.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void ReadmeCSharpExampleCompiles()
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.Repo, "README.md"));
        var block = Regex.Match(readme, "```csharp\\n(.*?)```", RegexOptions.Singleline);
        Assert.True(block.Success, "README.md has no ```csharp block");
        string dir = Directory.CreateTempSubdirectory("kedit-readme-").FullName;
        string bin = AppContext.BaseDirectory;
        string Ref(string name) => $"<Reference Include=\"{name}\"><HintPath>{Path.Combine(bin, name + ".dll")}</HintPath></Reference>";
        File.WriteAllText(Path.Combine(dir, "Example.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable><ImplicitUsings>enable</ImplicitUsings></PropertyGroup>
              <ItemGroup>{Ref("Kedit.Engine")}{Ref("Kedit.Kernels")}{Ref("System.Numerics.Tensors")}</ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), block.Groups[1].Value);
        var psi = new ProcessStartInfo("dotnet", $"build \"{dir}\" -nologo -v q") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"the README example does not compile:\n{output}");
        Directory.Delete(dir, true);
    }
}
