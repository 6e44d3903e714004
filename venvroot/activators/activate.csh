# Activates a venvroot environment. Source it from tcsh or csh:  source <env>/bin/activate.csh
# Every value is a quoted literal, so paths and the prompt are data, never code.
# csh has no functions: `deactivate` is an alias that sources this file again with
# _venvroot_deactivate set to its arguments.

if (! $?_venvroot_deactivate) then
    # Run instead of sourced, it would change a shell that exits at once: say so and fail.
    if ($?0) then
        if ("$0:t" == "activate.csh") then
            echo "venvroot: this script must be sourced, not run: source $0:q" > /dev/stderr
            exit 33
        endif
    endif
    # Leave the environment active in this shell through its own deactivate: it knows what it saved
    # and which session to stop.
    if ($?_VENVROOT_ACTIVE) then
        deactivate nondestructive
    endif
    # Then clear what another activator (virtualenv) left under the same names, and activate.
    set _venvroot_deactivate = nondestructive
    set _venvroot_activate
endif

# Literals only at the top level: csh skips untaken branches with a cruder scanner that quoted data
# could mislead.
set _venvroot_self = {{ (bin_dir ~ "/activate.csh")|q }}
set _venvroot_env = {{ env_dir|q }}
set _venvroot_bin = {{ bin_dir|q }}
set _venvroot_prompt = {{ prompt|q }}
set _venvroot_prompt_tcsh = {{ tcsh_prompt|q }}
set _venvroot_prompt_csh = {{ csh_prompt|q }}
{%- if session is not none %}
set _venvroot_session = {{ session|q }}
{%- endif %}

if ($?_venvroot_deactivate) then
{%- if session is not none %}
    # Stop the session first, while the environment's variables still describe it.
    if ($?_VENVROOT_SESSION) then
        unset _VENVROOT_SESSION
        "$_venvroot_session:q" stop $$
    endif
{%- endif %}
    # Saved values come back exactly; an unset one is unset again.
    if ($?_OLD_VIRTUAL_PATH) then
        setenv PATH "$_OLD_VIRTUAL_PATH:q"
        unset _OLD_VIRTUAL_PATH
    else if ($?_VENVROOT_PATH_WAS_UNSET) then
        # tcsh keeps $path when PATH goes, and setting $path exports PATH: restore, then unset.
        if ($?_VENVROOT_OLD_path) then
            set path = ($_VENVROOT_OLD_path:q)
            unset _VENVROOT_OLD_path
        endif
        unsetenv PATH
    endif
    if ($?_OLD_VIRTUAL_PROMPT) then
        set prompt = "$_OLD_VIRTUAL_PROMPT:q"
        unset _OLD_VIRTUAL_PROMPT
    endif
    if ($?_OLD_PKG_CONFIG_PATH) then
        setenv PKG_CONFIG_PATH "$_OLD_PKG_CONFIG_PATH:q"
        unset _OLD_PKG_CONFIG_PATH
    else if ($?_VENVROOT_PKG_CONFIG_PATH_WAS_UNSET) then
        unsetenv PKG_CONFIG_PATH
    endif
    if ($?_OLD_VIRTUAL_PYTHONHOME) then
        setenv PYTHONHOME "$_OLD_VIRTUAL_PYTHONHOME:q"
        unset _OLD_VIRTUAL_PYTHONHOME
    endif
    unsetenv VIRTUAL_ENV
    unsetenv VIRTUAL_ENV_PROMPT
    unset _VENVROOT_ACTIVE _VENVROOT_PATH_WAS_UNSET _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET
    # Forget command locations found through the old PATH. tcsh rebuilds its command hash whenever
    # PATH is set, so a second rebuild would only cost time (about 2 ms).
    if (! $?tcsh) rehash
    if ("$_venvroot_deactivate" != "nondestructive") then
        unalias deactivate
        unset _VENVROOT_ACTIVATE_CSH
    endif
    unset _venvroot_deactivate
endif

if ($?_venvroot_activate) then
    unset _venvroot_activate
    setenv VIRTUAL_ENV "$_venvroot_env:q"
    setenv VIRTUAL_ENV_PROMPT "$_venvroot_prompt:q"

    if ($?PATH) then
        set _OLD_VIRTUAL_PATH = "$PATH:q"
        # An empty PATH gets no ":" appended: an empty entry would mean the current directory.
        if ("$PATH:q" == "") then
            setenv PATH "$_venvroot_bin:q"
        else
            setenv PATH "${_venvroot_bin:q}:${PATH:q}"
        endif
    else
        set _VENVROOT_PATH_WAS_UNSET
        if ($?path) then
            set _VENVROOT_OLD_path = ($path:q)
        endif
        setenv PATH "$_venvroot_bin:q"
    endif

    # pkg-config run through the env finds the env's own .pc files first (as virtualenv sets it).
    if ($?PKG_CONFIG_PATH) then
        set _OLD_PKG_CONFIG_PATH = "$PKG_CONFIG_PATH:q"
        if ("$PKG_CONFIG_PATH:q" == "") then
            setenv PKG_CONFIG_PATH "${_venvroot_env:q}/lib/pkgconfig"
        else
            setenv PKG_CONFIG_PATH "${_venvroot_env:q}/lib/pkgconfig:${PKG_CONFIG_PATH:q}"
        endif
    else
        set _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET
        setenv PKG_CONFIG_PATH "${_venvroot_env:q}/lib/pkgconfig"
    endif

    if ($?PYTHONHOME) then
        set _OLD_VIRTUAL_PYTHONHOME = "$PYTHONHOME:q"
        unsetenv PYTHONHOME
    endif

    # $prompt exists only in interactive shells, and scripts test $?prompt for that: never create it.
    set _venvroot_show = 1
    if ($?VIRTUAL_ENV_DISABLE_PROMPT) then
        if ("$VIRTUAL_ENV_DISABLE_PROMPT:q" != "") set _venvroot_show = 0
    endif
    if ($?prompt) then
        if ($_venvroot_show == 1) then
            set _OLD_VIRTUAL_PROMPT = "$prompt:q"
            if ($?tcsh) then
                set prompt = "(${_venvroot_prompt_tcsh:q}) ${prompt:q}"
            else
                set prompt = "(${_venvroot_prompt_csh:q}) ${prompt:q}"
            endif
        endif
    endif

    set _VENVROOT_ACTIVE = 1
    set _VENVROOT_ACTIVATE_CSH = "$_venvroot_self:q"
    alias deactivate 'set _venvroot_deactivate = (\!*); source "$_VENVROOT_ACTIVATE_CSH:q"'
    if (! $?tcsh) rehash
{%- if session is not none %}

    "$_venvroot_session:q" start $$
    if ($status == 0) then
        set _VENVROOT_SESSION
    else
        # No session, no environment: undo everything (nothing to stop) and fail the source.
        deactivate
        set _venvroot_failed
    endif
{%- endif %}
endif

unset _venvroot_self _venvroot_env _venvroot_bin _venvroot_prompt _venvroot_prompt_tcsh _venvroot_prompt_csh
unset _venvroot_show
{%- if session is not none %}
unset _venvroot_session
# The last command sets the status `source` returns; eval substitutes the flag before unsetting it.
eval "unset _venvroot_failed; set status = $?_venvroot_failed"
{%- endif %}
