/* The docker agent's caller (agent_run.c): agent --run. */
int run(char **argv, char **environ_, int final);
