# Activates a venvroot environment. Source it, from bash, zsh or a POSIX sh:  . <env>/bin/activate
# Every value is a single-quoted literal, so paths and the prompt are data, never code.

# Run instead of sourced, it would change a shell that exits at once: say so and fail.
if [ -n "${BASH_VERSION-}" ]; then
    [ "${BASH_SOURCE-}" != "$0" ]
elif [ -n "${ZSH_VERSION-}" ]; then
    [ "${ZSH_EVAL_CONTEXT-}" != toplevel ]
else
    [ "${0##*/}" != activate ]
fi || {
    printf 'venvroot: this script must be sourced, not run: . %s\n' "$0" >&2
    exit 33
}

# Leave the environment active in this shell through its own deactivate: it knows what it saved and
# which session to stop.
if [ -n "${_VENVROOT_ACTIVE-}" ]; then
    deactivate nondestructive
fi

deactivate () {
{%- if session is not none %}
    # Stop the session first, while the environment's variables still describe it.
    if [ -n "${_VENVROOT_SESSION-}" ]; then
        unset _VENVROOT_SESSION
        {{ session|q }} stop "$$" || :
    fi
{%- endif %}
    # Saved values come back exactly: a set-but-empty value stays empty, an unset one unset.
    if [ -n "${_OLD_VIRTUAL_PATH+x}" ]; then
        PATH=$_OLD_VIRTUAL_PATH
        if [ -z "${_VENVROOT_PATH_UNEXPORTED-}" ]; then
            export PATH
        elif [ -n "${ZSH_VERSION-}" ]; then
            typeset -g +x PATH
        else
            export -n PATH
        fi
        unset _OLD_VIRTUAL_PATH
    elif [ -n "${_VENVROOT_PATH_WAS_UNSET-}" ]; then
        unset PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PS1+x}" ]; then
        PS1=$_OLD_VIRTUAL_PS1
        unset _OLD_VIRTUAL_PS1
    elif [ -n "${_VENVROOT_PS1_WAS_UNSET-}" ]; then
        unset PS1
    fi
    if [ -n "${_VENVROOT_PSVAR_SAVED-}" ]; then
        # zsh only (a scalar flag: under KSH_ARRAYS ${array+x} tests the first element); eval keeps
        # the array syntax away from POSIX parsers.
        eval 'psvar=("${_VENVROOT_OLD_PSVAR[@]}")'
        unset _VENVROOT_OLD_PSVAR _VENVROOT_PSVAR_SAVED
    fi
    if [ -n "${_OLD_PKG_CONFIG_PATH+x}" ]; then
        PKG_CONFIG_PATH=$_OLD_PKG_CONFIG_PATH
        export PKG_CONFIG_PATH
        unset _OLD_PKG_CONFIG_PATH
    elif [ -n "${_VENVROOT_PKG_CONFIG_PATH_WAS_UNSET-}" ]; then
        unset PKG_CONFIG_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME+x}" ]; then
        PYTHONHOME=$_OLD_VIRTUAL_PYTHONHOME
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT _VENVROOT_ACTIVE _VENVROOT_PATH_WAS_UNSET _VENVROOT_PATH_UNEXPORTED \
        _VENVROOT_PS1_WAS_UNSET _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET
    # Forget command locations found through the old PATH.
    hash -r 2>/dev/null || :
    if [ "${1-}" != nondestructive ]; then
        unset -f deactivate
    fi
}

# Clear what another activator (virtualenv, venv) left under the same variable names.
deactivate nondestructive

VIRTUAL_ENV={{ env_dir|q }}
export VIRTUAL_ENV
VIRTUAL_ENV_PROMPT={{ prompt|q }}
export VIRTUAL_ENV_PROMPT

if [ -n "${PATH+x}" ]; then
    _OLD_VIRTUAL_PATH=$PATH
    # bash and zsh make up a PATH when their environment has none, without exporting it: it goes
    # back unexported. (A POSIX sh leaves PATH unset instead.)
    if [ -n "${ZSH_VERSION-}" ]; then
        case ${(t)PATH} in *-export*) ;; *) _VENVROOT_PATH_UNEXPORTED=1 ;; esac
    elif [ -n "${BASH_VERSION-}" ]; then
        case $BASH_VERSION in
            [123].* | 4.[0-3].*) ;;  # no ${var@a} before bash 4.4
            *) case ${PATH@a} in *x*) ;; *) _VENVROOT_PATH_UNEXPORTED=1 ;; esac ;;
        esac
    fi
else
    _VENVROOT_PATH_WAS_UNSET=1
fi
# An empty PATH gets no ":" appended: an empty entry would mean the current directory.
PATH={{ bin_dir|q }}${PATH:+":$PATH"}
export PATH

# pkg-config run through the env finds the env's own .pc files first (as virtualenv sets it).
if [ -n "${PKG_CONFIG_PATH+x}" ]; then
    _OLD_PKG_CONFIG_PATH=$PKG_CONFIG_PATH
else
    _VENVROOT_PKG_CONFIG_PATH_WAS_UNSET=1
fi
PKG_CONFIG_PATH={{ env_dir|q }}/lib/pkgconfig${PKG_CONFIG_PATH:+":$PKG_CONFIG_PATH"}
export PKG_CONFIG_PATH

if [ -n "${PYTHONHOME+x}" ]; then
    _OLD_VIRTUAL_PYTHONHOME=$PYTHONHOME
    unset PYTHONHOME
fi

if [ -z "${VIRTUAL_ENV_DISABLE_PROMPT-}" ]; then
    if [ -n "${PS1+x}" ]; then
        _OLD_VIRTUAL_PS1=$PS1
    else
        _VENVROOT_PS1_WAS_UNSET=1
    fi
    # Plain assignments: PS1 keeps whatever export attribute it had.
    if [ -n "${BASH_VERSION-}" ]; then
        PS1={{ bash_prompt|q }}${PS1-}
    elif [ -n "${ZSH_VERSION-}" ]; then
        # zsh inserts a psvar entry as data whatever PROMPT_SUBST and PROMPT_BANG say.
        eval '_VENVROOT_OLD_PSVAR=("${psvar[@]}")'
        _VENVROOT_PSVAR_SAVED=1
        psvar[9]=$VIRTUAL_ENV_PROMPT
        # %Nv counts from 1; under KSH_ARRAYS the subscript above counts from 0.
        if [[ -o ksharrays ]]; then
            PS1="(%10v) ${PS1-}"
        else
            PS1="(%9v) ${PS1-}"
        fi
    elif [ -n "${FUNCNAME+x}" ]; then
        # Of the POSIX shells only busybox ash sets FUNCNAME (bash's name for it).
        PS1={{ busybox_prompt|q }}${PS1-}
    else
        PS1={{ sh_prompt|q }}${PS1-}
    fi
fi

hash -r 2>/dev/null || :
_VENVROOT_ACTIVE=1
{%- if session is not none %}

if {{ session|q }} start "$$"; then
    _VENVROOT_SESSION=1
else
    # No session, no environment: undo everything (nothing to stop) and fail the source.
    deactivate
    false
fi
{%- endif %}
