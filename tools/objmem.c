/* placeholder replaced below */
#include "objmem.h"
int main(void) { return 0; }
