# Homebrew formula for CC API: a template for a tap. Fill in homepage, url and sha256 from a release.
#
#   packaging/build.sh                        builds dist/cc_api-<version>.tar.gz (the sdist)
#   brew update-python-resources cc-api       generates the `resource` blocks for every dependency
#
# `brew services start cc-api` then runs the gateway as a launchd agent with the service block
# below; `cc-api status`, `cc-api logs -f` and `cc-api-menu` work with it as with `cc-api start`.
class CcApi < Formula
  include Language::Python::Virtualenv

  desc "Session-oriented HTTP gateway that runs Claude through the Claude Agent SDK"
  homepage "https://example.com/cc-api" # the project's public page
  url "https://files.pythonhosted.org/packages/source/c/cc-api/cc_api-0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "MIT"

  depends_on "python@3.12"

  # resource "claude-agent-sdk" do ... end, and one per dependency: generated, see above.
  # claude-agent-sdk bundles the Claude Code CLI in its platform wheels; check that the resource
  # you pin carries it (or that `claude` is on PATH), since the gateway runs every turn through it.

  def install
    virtualenv_install_with_resources
  end

  service do
    # The gateway writes its JSON log to ~/.cc-api/logs/cc-api.log itself (`cc-api logs` reads it);
    # stdout/stderr only carry what escapes that log, such as a crash before logging starts.
    run [opt_bin/"cc-api", "run", "--no-console-log"]
    keep_alive successful_exit: false
    working_dir Dir.home
    log_path var/"log/cc-api.log"
    error_log_path var/"log/cc-api.log"
    environment_variables PATH: std_service_path_env
  end

  test do
    assert_match "cc-api #{version}", shell_output("#{bin}/cc-api version")
    plist = shell_output("#{bin}/cc-api install-service --dry-run --platform macos")
    assert_match "<string>com.cc-api.gateway</string>", plist
    assert_match "cc-api is not running", shell_output("#{bin}/cc-api status", 3)
  end
end
