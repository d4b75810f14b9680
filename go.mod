module github.com/sslzoo/sslzoo

go 1.26
