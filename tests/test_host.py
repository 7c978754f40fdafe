"""Host facts (mnprof.host): the CPU read from /proc/cpuinfo, its theoretical peak, the environment and its
fingerprint."""

from __future__ import annotations

from mnprof.host import CpuInfo, cpu_info, host_environment, host_fingerprint, theoretical_peak_gflops


def test_cpu_info_and_theoretical_peak_from_a_cpuinfo_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu avx2 fma avx512f\n\n"
        "processor\t: 1\nvendor_id\t: Other\n"
    )
    cpu = cpu_info(cpuinfo)
    assert cpu == CpuInfo("AuthenticAMD", "AMD EPYC", 26, 2, 2500.0, frozenset({"fpu", "avx2", "fma", "avx512f"}))
    peak, how = theoretical_peak_gflops(2, cpu)
    assert peak == 2 * 2.5 * 64 and "Zen 5" in how
    unknown = CpuInfo("GenuineIntel", "Some CPU", 6, 1, 3000.0, frozenset())
    assert theoretical_peak_gflops(2, unknown)[0] is None


def test_environment_and_fingerprint():
    env = host_environment()
    for key in ("cpu_model", "logical_cores", "torch", "torch_blas", "onednn", "python", "os", "mnprof", "date"):
        assert key in env
    assert env["host_fingerprint"] == host_fingerprint(env)
    assert host_fingerprint(dict(env, date="another day", git_commit="x")) == env["host_fingerprint"]
    assert host_fingerprint(dict(env, cpu_model="another CPU")) != env["host_fingerprint"]
