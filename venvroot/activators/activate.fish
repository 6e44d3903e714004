# Activates a venvroot environment. Source it from fish:  source <env>/bin/activate.fish
# Every value is a single-quoted literal, so paths and the prompt are data, never code.

# Run instead of sourced, it would change a shell that exits at once: say so and fail.
if not builtin string match -q 'from sourcing file*' -- (status stack-trace)
    builtin printf 'venvroot: this script must be sourced, not run: source %s\n' (status filename) >&2
    exit 33
end

# Leave the environment active in this shell through its own deactivate: it knows what it saved and
# which session to stop.
if set -q _VENVROOT_ACTIVE
    deactivate nondestructive
end

{# The deactivate step of one variable the activation saved (or noted as unset). #}
{%- macro restore(name, saved) %}
    if set -q {{ saved }}
        set -gx {{ name }} ${{ saved }}
        set -e {{ saved }}
    else if set -q _VENVROOT_{{ name }}_WAS_UNSET
        set -e {{ name }}
    end
{%- endmacro -%}
function deactivate -d 'Leave the venvroot environment'
{%- if session is not none %}
    # Stop the session first, while the environment's variables still describe it.
    if set -q _VENVROOT_SESSION
        set -e _VENVROOT_SESSION
        {{ session|q }} stop $fish_pid
    end
{%- endif %}
    # Saved values come back exactly; an unset one is erased again.
{{- restore("PATH", "_OLD_VIRTUAL_PATH") }}
{{- restore("PKG_CONFIG_PATH", "_OLD_PKG_CONFIG_PATH") }}
    if set -q _OLD_VIRTUAL_PYTHONHOME
        set -gx PYTHONHOME $_OLD_VIRTUAL_PYTHONHOME
        set -e _OLD_VIRTUAL_PYTHONHOME
    end
    if set -q _OLD_FISH_PROMPT_OVERRIDE
        # An empty local function path lets `functions -e` drop fish_prompt without autoloading it back.
        set -l fish_function_path
        builtin functions -e fish_prompt
        if builtin functions -q _old_fish_prompt
            builtin functions -c _old_fish_prompt fish_prompt
            builtin functions -e _old_fish_prompt
        end
        set -e _OLD_FISH_PROMPT_OVERRIDE
    end
    set -e VIRTUAL_ENV
    set -e VIRTUAL_ENV_PROMPT
    set -e _VENVROOT_ACTIVE
    set -e _VENVROOT_PATH_WAS_UNSET
    set -e _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET
    if test "$argv[1]" != nondestructive
        builtin functions -e deactivate
    end
end

# Clear what another activator (virtualenv) left under the same names.
deactivate nondestructive

set -gx VIRTUAL_ENV {{ env_dir|q }}
set -gx VIRTUAL_ENV_PROMPT {{ prompt|q }}

if set -q PATH
    set -g _OLD_VIRTUAL_PATH $PATH
else
    set -g _VENVROOT_PATH_WAS_UNSET 1
end
set -gx PATH {{ bin_dir|q }} $PATH

# pkg-config run through the env finds the env's own .pc files first (as virtualenv sets it).
if set -q PKG_CONFIG_PATH
    set -g _OLD_PKG_CONFIG_PATH $PKG_CONFIG_PATH
else
    set -g _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET 1
end
if test -n "$PKG_CONFIG_PATH"
    set -gx PKG_CONFIG_PATH {{ env_dir|q }}/lib/pkgconfig:"$PKG_CONFIG_PATH"
else
    set -gx PKG_CONFIG_PATH {{ env_dir|q }}/lib/pkgconfig
end

if set -q PYTHONHOME
    set -g _OLD_VIRTUAL_PYTHONHOME $PYTHONHOME
    set -e PYTHONHOME
end

if test -z "$VIRTUAL_ENV_DISABLE_PROMPT"
    # `(%s)` prints the prompt text as data, never as an escape or a format.
    if builtin functions -q fish_prompt
        builtin functions -c fish_prompt _old_fish_prompt
        function fish_prompt
            # The user's prompt runs first and sees the last command's $status (`set` passes it on).
            set -l old_status $status
            set -l old_prompt (_old_fish_prompt)
            builtin printf '(%s) ' $VIRTUAL_ENV_PROMPT
            builtin string join -- \n $old_prompt
            return $old_status
        end
    else
        function fish_prompt
            builtin printf '(%s) ' $VIRTUAL_ENV_PROMPT
        end
    end
    set -g _OLD_FISH_PROMPT_OVERRIDE $VIRTUAL_ENV
end

set -g _VENVROOT_ACTIVE 1
{%- if session is not none %}

if {{ session|q }} start $fish_pid
    set -g _VENVROOT_SESSION 1
else
    # No session, no environment: undo everything (nothing to stop) and fail the source.
    deactivate
    false
end
{%- endif %}
