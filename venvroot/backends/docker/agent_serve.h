/* The docker agent inside the container (agent_serve.c): agent --serve. */
int serve(char **argv);
