/* Compiles one engine header alone (HDR), proving it is self-contained. */
#include HDR

int main(void) { return 0; }
