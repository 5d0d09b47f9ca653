package policyfile_test

import (
	"fmt"
	"log"

	"github.com/stepupkit/stepup/policyfile"
)

func ExampleParse() {
	policies, err := policyfile.Parse([]byte(`
policies:
  - method: POST
    route: /transfer
    action: transfer
    attributes:
      - {name: amount, from: form, key: amount, type: number}
  - method: "*"
    route: /admin/{path...}
    action: adminAccess
    remember: 5m
`))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range policies {
		fmt.Println(p.Method, p.Route, p.Action, p.Remember, len(p.Attributes))
	}
	// Output:
	// POST /transfer transfer 0s 1
	// * /admin/{path...} adminAccess 5m0s 0
}
