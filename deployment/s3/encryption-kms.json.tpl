{
  "Rules": [
    {
      "ApplyServerSideEncryptionByDefault": {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": "${kms_key_arn}"
      },
      "BucketKeyEnabled": true
    }
  ]
}
