# Activates a venvroot environment. Source it from nushell:  source <env>/bin/activate.nu
# Every value is a double-quoted literal with no interpolation, so paths and the prompt are data.

# Run as a script instead of sourced, it would change a shell that exits at once: say so and fail.
if ($env | get -o PROCESS_PATH | default '' | path expand) == ({{ bin_dir|q }} | path join activate.nu) {
    print -e $"venvroot: this script must be sourced, not run: source ($env.PROCESS_PATH)"
    exit 33
}

# What this activation saved, in one record: nushell passes no record to child processes.
def --env deactivate [mode?: string] {
    if '_VENVROOT_SAVED' not-in $env { return }
    let saved = $env._VENVROOT_SAVED
    # Whatever the activation left to run on leaving (its session's stop) runs first, while the
    # environment's variables still describe it.
    if '_VENVROOT_ON_LEAVE' in $env {
        let leave = $env._VENVROOT_ON_LEAVE
        hide-env _VENVROOT_ON_LEAVE
        do $leave
    }
    # Saved values come back exactly; an unset one is hidden again.
    for name in [PATH PKG_CONFIG_PATH PYTHONHOME PROMPT_COMMAND] {
        let old = $saved | get $name
        if $old.set {
            load-env {$name: $old.value}
        } else {
            hide-env -i $name
        }
    }
    hide-env -i VIRTUAL_ENV VIRTUAL_ENV_PROMPT _VENVROOT_SAVED
}

# Leave an environment active in this shell first; this also clears what virtualenv's activator
# left under the same variable names.
deactivate nondestructive

# One block, so that its helpers stay out of the shell's scope; its changes to $env stay.
do --env {
    let saved = {|name| if $name in $env { {set: true, value: ($env | get $name)} } else { {set: false, value: null} } }
    $env._VENVROOT_SAVED = {
        PATH: (do $saved PATH)
        PKG_CONFIG_PATH: (do $saved PKG_CONFIG_PATH)
        PYTHONHOME: (do $saved PYTHONHOME)
        PROMPT_COMMAND: (do $saved PROMPT_COMMAND)
    }

    $env.VIRTUAL_ENV = {{ env_dir|q }}
    $env.VIRTUAL_ENV_PROMPT = {{ prompt|q }}

    # An empty PATH gets no empty entry appended: an empty entry would mean the current directory.
    let path = $env | get -o PATH | default [] | if ($in | describe) == 'string' { split row (char esep) } else { $in }
    $env.PATH = if ($path | all { $in == '' }) { [{{ bin_dir|q }}] } else { $path | prepend {{ bin_dir|q }} }

    # pkg-config run through the env finds the env's own .pc files first (as virtualenv sets it).
    let pc = $env | get -o PKG_CONFIG_PATH | default ''
    $env.PKG_CONFIG_PATH = if ($pc | is-empty) { {{ env_dir|q }} + '/lib/pkgconfig' } else { {{ env_dir|q }} + '/lib/pkgconfig' + (char esep) + $pc }

    hide-env -i PYTHONHOME

    if ($env | get -o VIRTUAL_ENV_DISABLE_PROMPT | default '' | is-empty) {
        # The prefix is printed as data; the user's own prompt (a closure or a string) follows it.
        let old_prompt = $env | get -o PROMPT_COMMAND
        let prefix = '(' + {{ prompt|q }} + ') '
        $env.PROMPT_COMMAND = if ($old_prompt | describe | str starts-with 'closure') {
            {|| $prefix + (do $old_prompt) }
        } else {
            {|| $prefix + ($old_prompt | default '') }
        }
    }
{%- if session is not none %}

    try {
        ^{{ session|q }} start $nu.pid
        $env._VENVROOT_ON_LEAVE = {|| try { ^{{ session|q }} stop $nu.pid } }
    } catch {
        # No session, no environment: undo everything (nothing to stop) and fail the source.
        deactivate
        error make -u {msg: 'venvroot: the environment was not activated: its session did not start'}
    }
{%- endif %}
}
