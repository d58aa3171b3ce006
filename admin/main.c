/* fedgate-admin: the only writer of the fedgate store. Everything happens in cli_main(). */
#include "admin/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
