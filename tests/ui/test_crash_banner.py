"""The crash banner (issue 10, item 5): the log lines that explain a crash rather than the
chat template's source, the full log one click away, and a bug report with doctor's output."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from app.crash_report import meaningful_lines
from app.engine import events as ev

# The end of a real worker log (llama-cpp-python prints the chat template last), with
# an assertion from llama.cpp before it.
LOG = """\
llama_model_loader: - kv  22:                   general.quantization_version u32 = 2
load_tensors: layer   0 assigned to device CPU, is_swa = 0
create_tensor: loading tensor blk.0.attn_q.weight
llama_context: n_ctx         = 4096
llama_kv_cache: size =   90.00 MiB (  4096 cells,  30 layers,  1/1 seqs)
ggml/src/ggml-cpu/ops.cpp:4521: GGML_ASSERT(ne00 % 32 == 0) failed
sched_reserve: CPU compute buffer size =    99.38 MiB
CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1
Model metadata: {'tokenizer.chat_template': "{% for message in messages %}"}
Available chat formats from metadata: chat_template.default
Using gguf chat template: {% for message in messages %}{% if loop.first %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}
Using chat eos_token: <|im_end|>
Using chat bos_token: <|im_start|>
glassbox: warm-up
set_abort_callback: call
set_abort_callback: call
set_abort_callback: call
""".splitlines()


def test_meaningful_lines_skip_the_template_and_keep_errors_and_last_steps():
    lines = meaningful_lines(LOG, limit=6)
    text = "\n".join(lines)
    assert "{%" not in text and "SmolLM, trained by" not in text
    assert "create_tensor" not in text and "SSE3" not in text
    assert any("GGML_ASSERT" in line for line in lines)
    assert lines[-2] == "glassbox: warm-up"
    assert lines[-1] == "set_abort_callback: call  (x3)"  # the last operation, once
    assert len(lines) <= 6


def test_banner_shows_the_explaining_lines_not_the_template(qtbot, tmp_path):
    from ui.chrome.crash_banner import CrashBanner

    banner = CrashBanner()
    qtbot.addWidget(banner)
    log_path = tmp_path / "worker.log"
    log_path.write_text("\n".join(LOG) + "\n")
    banner.show_crash(
        ev.EngineCrashed(exit_code=-6, signal_name="SIGABRT", log_tail=LOG[-20:]),
        log_path=log_path,
    )
    shown = banner.log.toPlainText()
    assert "GGML_ASSERT" in shown and "glassbox: warm-up" in shown and "(x3)" in shown
    assert "{%" not in shown and "im_start" not in shown
    assert banner.full_log_button.isEnabled()

    dialog = banner.show_full_log()
    qtbot.waitUntil(lambda: dialog.text.toPlainText() == log_path.read_text(), timeout=10_000)
    dialog.close()


def test_copy_bug_report_has_doctor_output_and_the_log_tail(qtbot, tmp_path, model_path):
    from ui.chrome.crash_banner import CrashBanner

    banner = CrashBanner()
    qtbot.addWidget(banner)
    log_path = tmp_path / "worker.log"
    log_path.write_text("\n".join(LOG) + "\n")
    banner.show_crash(
        ev.EngineCrashed(exit_code=-9, signal_name="SIGKILL", log_tail=LOG),
        log_path=log_path,
        model_path=model_path,
    )
    with qtbot.waitSignal(banner.report_copied, timeout=180_000) as blocker:
        banner.report_button.click()
        assert not banner.report_button.isEnabled()  # running, off the GUI thread
    report = blocker.args[0]
    assert QGuiApplication.clipboard().text() == report
    assert "## glassbox doctor" in report and "## CPU" in report and "result:" in report
    assert "killed by SIGKILL" in report
    assert "GGML_ASSERT" in report and "{%" not in report
    assert banner.report_button.isEnabled() and "copied" in banner.report_status.text()
    banner.tasks.wait(10)
