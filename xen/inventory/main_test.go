package inventory_test

import (
	"os"
	"testing"

	"github.com/xenft/xenft/xen/xentest"
)

func TestMain(m *testing.M) { os.Exit(xentest.RunWithFakeXL(m)) }
