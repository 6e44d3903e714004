# Activates a venvroot environment. Source it from xonsh:  source <env>/bin/activate.xsh
# Every value is a Python string literal, so paths and the prompt are data, never code.

if __name__ == "__main__":
    # Run instead of sourced, it would change a shell that exits at once: say so and fail.
    import sys as _venvroot_sys

    print(f"venvroot: this script must be sourced, not run: source {__file__}", file=_venvroot_sys.stderr)
    _venvroot_sys.exit(33)


def _venvroot_activate(env_dir, bin_dir, prompt{% if session is not none %}, session{% endif %}):
    import types

    xsh = __xonsh__
    unset = object()  # marks a variable that did not exist before activation

    class Activation:
        """What one activation changed, so that deactivate can put it back exactly."""

        def __init__(self):
            self.saved = {}
            self.old_env_name = unset
{%- if session is not none %}
            self.session_started = False
{%- endif %}

        def set(self, name, value):
            self.saved.setdefault(name, xsh.env[name] if name in xsh.env else unset)
            xsh.env[name] = value

        def drop(self, name):
            if name in xsh.env:
                self.saved.setdefault(name, xsh.env[name])
                del xsh.env[name]

        def env_name(self):
            # Read on every prompt; doubled braces keep the text out of xonsh's colour and field syntax.
            if xsh.env.get("VIRTUAL_ENV_DISABLE_PROMPT"):
                return ""
            text = str(xsh.env.get("VIRTUAL_ENV_PROMPT", ""))
            return "(" + text.replace("{", "{" * 2).replace("}", "}" * 2) + ") "

        def deactivate(self, args=None, stdin=None):
{%- if session is not none %}
            if self.session_started:
                # Stop the session first, while the environment's variables still describe it.
                self.session_started = False
                run_session("stop")
{%- endif %}
            fields = xsh.env["PROMPT_FIELDS"]
            if self.old_env_name is not unset:
                fields["env_name"] = self.old_env_name
                self.old_env_name = unset
            for name, value in self.saved.items():
                if value is unset:
                    xsh.env.pop(name, None)
                else:
                    xsh.env[name] = value
            self.saved.clear()
            xsh.env.pop("VIRTUAL_ENV", None)
            xsh.env.pop("VIRTUAL_ENV_PROMPT", None)
            if getattr(xsh.xontrib, "venvroot", None) is self:
                del xsh.xontrib.venvroot
            if not args or args[0] != "nondestructive":
                xsh.aliases.pop("deactivate", None)

{%- if session is not none %}

    def run_session(verb):
        import os
        import subprocess

        # xonsh keeps its variables to itself: the hook gets them through env=.
        argv = [session, verb, str(os.getpid())]
        return subprocess.run(argv, env=xsh.env.detype(), check=False).returncode
{%- endif %}

    if not hasattr(xsh, "xontrib"):
        xsh.xontrib = types.SimpleNamespace()
    # Leave the environment active in this shell (venvroot's or virtualenv's) through its own
    # deactivate: it knows what it saved and which session to stop.
    for previous in ("venvroot", "virtualenv"):
        if hasattr(xsh.xontrib, previous):
            getattr(xsh.xontrib, previous).deactivate(["nondestructive"])
            if hasattr(xsh.xontrib, previous):
                delattr(xsh.xontrib, previous)

    this = Activation()
    xsh.xontrib.venvroot = this
    xsh.env["VIRTUAL_ENV"] = env_dir
    xsh.env["VIRTUAL_ENV_PROMPT"] = prompt
    this.set("PATH", [bin_dir, *xsh.env.get("PATH", [])])
    this.drop("PYTHONHOME")
    # pkg-config run through the env finds the env's own .pc files first (as virtualenv sets it).
    this.set("PKG_CONFIG_PATH", [env_dir + "/lib/pkgconfig", *xsh.env.get("PKG_CONFIG_PATH", [])])
    # The prompt: xonsh's {env_name} field, shown by its default $PROMPT, takes "(prompt) " from us.
    fields = xsh.env["PROMPT_FIELDS"]
    this.old_env_name = fields.get("env_name", unset)
    fields["env_name"] = this.env_name
    xsh.aliases["deactivate"] = this.deactivate
{%- if session is not none %}

    if run_session("start") != 0:
        # No session, no environment: undo everything (nothing to stop) and fail the source.
        this.deactivate()
        return False
    this.session_started = True
    return True
{%- endif %}


{% if session is none -%}
_venvroot_activate({{ env_dir|q }}, {{ bin_dir|q }}, {{ prompt|q }})
{% else -%}
if not _venvroot_activate({{ env_dir|q }}, {{ bin_dir|q }}, {{ prompt|q }}, {{ session|q }}):
    del _venvroot_activate
    raise SystemExit(1)
{% endif -%}
del _venvroot_activate
